"""Legacy PRNG keys (``jax.random.PRNGKey``, uint32 key data) at every entry point that takes a
key give bit-identical results to typed keys (``jax.random.key``) of the same seed."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax import drifts, keys, meta
from pgjax.keys import typed_key

TINY = dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=4,
            total_timesteps=4 * 32 * 3)


def assert_trees_equal(a, b):
    """Every leaf bit-identical (NaN where NaN; typed keys compared by their key data)."""
    def data(x):
        return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    leaves_a, leaves_b = jax.tree.leaves(jax.tree.map(data, a)), jax.tree.leaves(
        jax.tree.map(data, b))
    assert jax.tree.structure(a) == jax.tree.structure(b) and len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def config():
    return pgjax.make_config("ppo", "CartPole-v1", **TINY)


@pytest.fixture(scope="module")
def train(config):
    return jax.jit(pgjax.make_train(config))


@pytest.fixture(scope="module")
def typed_run(train):
    return train(jax.random.key(0))


def test_docstring_examples():
    result = doctest.testmod(keys)
    assert result.attempted > 0 and result.failed == 0


def test_typed_key_wraps_legacy_key_data_and_passes_typed_keys():
    typed = jax.random.key(7)
    assert typed_key(typed) is typed
    wrapped = typed_key(jax.random.PRNGKey(7))
    assert jnp.issubdtype(wrapped.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(wrapped), jax.random.key_data(typed))
    batch = typed_key(jax.random.split(jax.random.PRNGKey(0), 5))
    np.testing.assert_array_equal(jax.random.key_data(batch),
                                  jax.random.key_data(jax.random.split(jax.random.key(0), 5)))
    np.testing.assert_array_equal(  # the same inside jit
        jax.random.key_data(jax.jit(typed_key)(jax.random.PRNGKey(7))),
        jax.random.key_data(typed))


@pytest.mark.parametrize("bad, got", [(0, "got int"),
                                      (np.zeros(2, np.int32), "got int32 array of shape"),
                                      (np.zeros(3, np.uint32), r"shape \(3,\)"),
                                      (np.uint32(5), r"shape \(\)")])
def test_typed_key_refuses_what_is_not_a_key(bad, got):
    with pytest.raises(TypeError, match=r"^key: expected jax.random.key\(seed\) or "
                                        rf"jax.random.PRNGKey\(seed\).*{got}"):
        typed_key(bad)


def test_make_train_legacy_key_equals_typed_key(train, typed_run):
    legacy_run = train(jax.random.PRNGKey(0))
    assert_trees_equal(legacy_run, typed_run)
    assert jnp.issubdtype(legacy_run[0].key.dtype, jax.dtypes.prng_key)  # the state's key: typed


@pytest.mark.slow
def test_make_train_vmapped_over_legacy_keys_equals_typed_keys(config):
    train = jax.jit(jax.vmap(pgjax.make_train(config)))
    legacy = train(jax.random.split(jax.random.PRNGKey(0), 2))
    typed = train(jax.random.split(jax.random.key(0), 2))
    assert_trees_equal(legacy, typed)
    assert not np.array_equal(typed[1]["policy_loss"][0], typed[1]["policy_loss"][1])  # 2 seeds


def test_evaluate_legacy_key_equals_typed_key(config, typed_run):
    state = typed_run[0]
    evaluate = jax.jit(lambda k: pgjax.evaluate(config, state, k, num_episodes=4))
    legacy, typed = evaluate(jax.random.PRNGKey(5)), evaluate(jax.random.key(5))
    assert np.isfinite(np.asarray(typed)).all()
    np.testing.assert_array_equal(legacy, typed)


def test_make_policy_act_legacy_key_equals_typed_key(config, typed_run):
    act = pgjax.make_policy(config, typed_run[0])
    obs = jnp.linspace(-0.1, 0.1, 8 * 4).reshape(8, 4)
    batched = jax.vmap(act)
    legacy = batched(jax.random.split(jax.random.PRNGKey(2), 8), obs)
    typed = batched(jax.random.split(jax.random.key(2), 8), obs)
    np.testing.assert_array_equal(legacy, typed)
    np.testing.assert_array_equal(act(jax.random.PRNGKey(1), obs[0]),
                                  act(jax.random.key(1), obs[0]))


def test_continuous_act_legacy_key_equals_typed_key():
    config = pgjax.make_config("ppo", "Pendulum-v1", **TINY)
    act = pgjax.make_policy(config, pgjax.make_trainer(config).init(jax.random.key(0)))
    obs = jnp.array([1.0, 0.0, 0.5])
    np.testing.assert_array_equal(act(jax.random.PRNGKey(4), obs), act(jax.random.key(4), obs))


def test_trainer_init_legacy_key_equals_typed_key(config):
    init = pgjax.make_trainer(config).init
    assert_trees_equal(init(jax.random.PRNGKey(9)), init(jax.random.key(9)))


@pytest.mark.slow
def test_meta_evaluate_legacy_keys_equal_typed_keys():
    config = pgjax.make_config("lpo", "CartPole-v1", **TINY, learning_rate=0.02)
    members = jax.tree.map(lambda x: jnp.stack([x * 0, x]),
                           drifts.init_lpo(jax.random.key(1), scale=2.0, hidden=8))
    evaluate = meta.make_evaluate(config, 2, 1)
    legacy = evaluate(members, jax.random.split(jax.random.PRNGKey(3), 2))
    typed = evaluate(members, jax.random.split(jax.random.key(3), 2))
    assert legacy.shape == (2, 2)
    np.testing.assert_array_equal(legacy, typed)


def test_rollout_legacy_key_equals_typed_key(config):
    from pgjax.rollout import rollout
    from pgjax.trainer import make_env, make_network

    env = make_env(config)
    network = make_network(config, env)
    state = pgjax.make_trainer(config).init(jax.random.key(0))
    collect = jax.jit(lambda key: rollout(env, network, state.params.actor, state.env_state,
                                          state.obs, key, 8))
    assert_trees_equal(collect(jax.random.PRNGKey(6)), collect(jax.random.key(6)))


@pytest.mark.parametrize("legacy", [False, True])
def test_written_out_threefry_draws_are_jax_random_draws(legacy):
    """pgjax.keys' draws (Threefry-2x32 written out) are jax.random's, bit for bit, under jit
    and vmap, for typed and legacy keys; and they do not call JAX's own draws (its rolled loop
    on CPU)."""
    from pgjax import keys as K

    make = jax.random.PRNGKey if legacy else jax.random.key
    batch = jnp.stack([make(s) for s in (0, 7, 123456)])
    shapes = [(), (3,), (2, 4, 512), (128, 4, 2)]

    def ours(key):
        return ([jax.random.key_data(K.split_key(key, n)) for n in (1, 2, 5, 640)]
                + [f(key, s) for s in shapes for f in (K.random_bits, K.gumbel, K.normal)])

    def theirs(key):
        key = typed_key(key)
        return ([jax.random.key_data(jax.random.split(key, n)) for n in (1, 2, 5, 640)]
                + [f(key, s) for s in shapes
                   for f in (jax.random.bits, jax.random.gumbel, jax.random.normal)])

    for got, want in zip(jax.jit(jax.vmap(ours))(batch), jax.jit(jax.vmap(theirs))(batch)):
        np.testing.assert_array_equal(got, want)
    jaxpr = str(jax.make_jaxpr(ours)(batch[0]))  # no call into JAX's own draws
    assert "random_split" not in jaxpr and "random_bits" not in jaxpr


def test_other_key_implementations_draw_through_jax_random():
    from pgjax import keys as K

    key = jax.random.key(3, impl="rbg")
    np.testing.assert_array_equal(jax.random.key_data(K.split_key(key, 4)),
                                  jax.random.key_data(jax.random.split(key, 4)))
    np.testing.assert_array_equal(jax.jit(lambda k: K.gumbel(k, (5,)))(key),
                                  jax.jit(lambda k: jax.random.gumbel(k, (5,)))(key))
