"""The rollout carries small env states and stacks small transitions packed by dtype: the
packing is exact, and a rollout equals the same steps taken one by one with the env's own
state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax.packing import dtype_packing, scan_packed
from pgjax.rollout import (PACKED_OUTPUT_BYTES, PACKED_STATE_BYTES, Transition, act, rollout,
                           rollout_keys, state_carry)
from pgjax.trainer import make_env, make_network


def mixed_tree(num_envs=3):
    """Leaves of every kind a state holds: per-env scalars, vectors, matrices, ints, bools and
    PRNG keys, in an order that interleaves the dtypes."""
    ramp = jnp.arange(num_envs * 6, dtype=jnp.float32)
    return {
        "x": ramp[:num_envs] + 0.5,
        "grid": ramp.reshape(num_envs, 2, 3) * -1.25,
        "time": jnp.arange(num_envs, dtype=jnp.int32) * 7,
        "alive": jnp.arange(num_envs) % 2 == 0,
        "key": jax.random.split(jax.random.key(1), num_envs),
        "nested": (jnp.arange(num_envs * 2, dtype=jnp.int32).reshape(num_envs, 2) - 3,
                   ramp[-num_envs:] * 3.0),
    }


def test_packing_round_trips_exactly_and_groups_by_dtype():
    tree = mixed_tree()
    pack, unpack = dtype_packing(tree, lead_ndim=1)
    packed, others = pack(tree)
    assert sorted(packed) == ["bool", "float32", "int32"]
    assert packed["float32"].shape == (3, 1 + 6 + 1)
    assert packed["int32"].shape == (3, 1 + 2)
    assert len(others) == 1  # the keys, as they are
    back = unpack((packed, others))
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    for got, want in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
        assert got.dtype == want.dtype and got.shape == want.shape
        if jax.dtypes.issubdtype(want.dtype, jax.dtypes.prng_key):
            want, got = jax.random.key_data(want), jax.random.key_data(got)
        np.testing.assert_array_equal(got, want)
    # under jit and vmap (seeds) too
    seeds = jax.tree.map(lambda x: jnp.stack([x, x]), tree)
    again = jax.jit(jax.vmap(lambda t: unpack(pack(t))))(seeds)
    np.testing.assert_array_equal(again["grid"], seeds["grid"])
    np.testing.assert_array_equal(again["nested"][0], seeds["nested"][0])


def test_only_small_states_are_packed():
    small = {"x": jnp.zeros((4, PACKED_STATE_BYTES // 4))}
    large = {"x": jnp.zeros((4, PACKED_STATE_BYTES // 4 + 1))}
    assert isinstance(state_carry(small)[0](small), tuple)
    assert state_carry(large)[0](large) is large


def scan_outputs(fn, *args):
    """The number of stacked outputs of the (one) scan in ``fn``'s jaxpr."""
    scans = [e for e in jax.make_jaxpr(fn)(*args).eqns if e.primitive.name == "scan"]
    assert len(scans) == 1
    return len(scans[0].outvars) - scans[0].params["num_carry"]


def test_scan_packed_stacks_small_outputs_one_per_dtype_and_returns_them_exactly():
    def step(carry, x):
        tree = mixed_tree()
        outputs = jax.tree.map(lambda leaf: leaf if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
                               else leaf + (carry + x).astype(leaf.dtype), tree)
        return carry + 1, outputs

    xs = jnp.arange(5)
    want = jax.lax.scan(step, 0, xs)
    got = jax.jit(lambda xs: scan_packed(step, 0, xs, lead_ndim=1))(xs)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        if jax.dtypes.issubdtype(b.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    # three dtypes and the keys as they are, against the tree's seven leaves
    assert scan_outputs(lambda xs: scan_packed(step, 0, xs, lead_ndim=1), xs) == 4
    assert scan_outputs(lambda xs: jax.lax.scan(step, 0, xs), xs) == 7


def test_only_small_outputs_are_stacked_packed():
    def step_of(width):
        return lambda carry, x: (carry, {"a": jnp.full((4, width), x, jnp.float32),
                                         "b": jnp.full((4,), x, jnp.float32)})

    def stacked(width, max_bytes):
        return scan_outputs(lambda xs: scan_packed(step_of(width), 0, xs, max_bytes=max_bytes,
                                                   lead_ndim=1), jnp.arange(3.0))

    assert stacked(7, 32) == 1 and stacked(8, 32) == 2 and stacked(100, None) == 1


@pytest.mark.parametrize("env_id, stacked", [("CartPole-v1", 3), ("Breakout-MinAtar", 9)])
def test_rollout_stacks_small_transitions_packed(env_id, stacked):
    """CartPole's 54-byte transitions as one array per dtype (float32, int32, bool),
    Breakout-MinAtar's 3.2 kB ones field by field (over :data:`PACKED_OUTPUT_BYTES`)."""
    config = pgjax.make_config("ppo", env_id, num_envs=2, num_steps=4, total_timesteps=8,
                               num_minibatches=1)
    env = make_env(config)
    network = make_network(config, env)
    state = jax.eval_shape(pgjax.make_trainer(config).init, jax.random.key(0))
    assert scan_outputs(lambda s: rollout(env, network, s.params.actor, s.env_state, s.obs,
                                          jax.random.key(1), 4), state) == stacked


def nested_scans(jaxpr):
    """Every scan equation in ``jaxpr`` and in the jaxprs its equations hold."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            yield eqn
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                yield from nested_scans(inner)


@pytest.mark.parametrize("algo, steps", [("ppo", 2 * 2), ("mdpo", None)])
def test_gradient_steps_stack_their_metrics_packed(algo, steps):
    """The first-order update's scan over gradient steps (MDPO's over its policy steps) stacks
    its per-step metrics and samples as one float32 array."""
    config = pgjax.make_config(algo, "CartPole-v1", num_envs=2, num_steps=6, num_epochs=2,
                               num_minibatches=2, total_timesteps=12)
    steps = steps or config.hparams.policy_steps
    trainer = pgjax.make_trainer(config)
    state = jax.eval_shape(trainer.init, jax.random.key(0))
    jaxpr = jax.make_jaxpr(trainer.update)(state).jaxpr
    sgd = [e for e in nested_scans(jaxpr) if e.params["length"] == steps]
    assert len(sgd) == 1
    assert len(sgd[0].outvars) - sgd[0].params["num_carry"] == 1


@pytest.mark.parametrize("env_id, extra", [
    ("CartPole-v1", {}),
    ("Pendulum-v1", {"normalize_observations": True, "normalize_rewards": True}),
])
def test_rollout_equals_the_steps_taken_one_by_one(env_id, extra):
    """The scanned rollout (state carried and outputs stacked packed) against a Python loop of
    ``act`` on the env's own state, with the same keys: every transition field (floats within
    two roundings) and the final state, bit for bit."""
    num_envs, num_steps = 3, 40  # CartPole episodes end within 40 random steps: resets run
    config = pgjax.make_config("ppo", env_id, num_envs=num_envs, num_steps=num_steps,
                               total_timesteps=num_envs * num_steps, **extra)
    env = make_env(config)
    network = make_network(config, env)
    state = pgjax.make_trainer(config).init(jax.random.key(0))
    assert isinstance(state_carry(state.env_state)[0](state.env_state), tuple)  # packed
    keys = rollout_keys(jax.random.key(5), num_steps, num_envs)
    actor = state.params.actor

    env_state, obs, traj = jax.jit(
        lambda s, o: rollout(env, network, actor, s, o, keys, num_steps))(state.env_state,
                                                                          state.obs)

    @jax.jit
    def one_step(env_state, obs, step_keys):
        policy = network.policy(actor, obs)
        return act(env, network, policy, env_state, obs, step_keys[0], step_keys[1:])

    ref_state, ref_obs, steps = state.env_state, state.obs, []
    for t in range(num_steps):
        ref_state, ref_obs, transition = one_step(ref_state, ref_obs, keys[t])
        steps.append(transition)
    ref = jax.tree.map(lambda *xs: jnp.stack(xs), *steps)
    assert isinstance(traj, Transition)
    for got, want in zip(jax.tree.leaves(traj), jax.tree.leaves(ref)):
        if jnp.issubdtype(want.dtype, jnp.floating):
            # The scan stacks its outputs packed (one kernel per dtype), where XLA computes
            # a normalised reward (r / √(var + ε)) with other roundings than the lone step.
            np.testing.assert_array_max_ulp(got, want, maxulp=2)
        else:
            np.testing.assert_array_equal(got, want)
    for got, want in zip(jax.tree.leaves(env_state), jax.tree.leaves(ref_state)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(obs, ref_obs)
    if env_id == "CartPole-v1":
        assert traj.done.any()
