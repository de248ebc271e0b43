"""AutoReset's pooled ("optimistic") mode: K = ⌈N / reset_ratio⌉ fresh starts per step for N
vmapped envs, handed to the envs that finished in env order; reset_ratio=1 is the default."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.envs import AutoReset, Box, Discrete

NUM_ENVS = 6


class Scripted:
    """An env whose state is (start, t); ``reset`` draws ``start`` from the key, ``step``
    terminates when the action is 1. ``reset`` reports the batch it is computed for."""

    observation_space = Box.make(-jnp.inf, jnp.inf, (2,))
    action_space = Discrete(2)

    def __init__(self):
        self.reset_batches = []

    def _record(self, start):
        self.reset_batches.append(start.shape)
        return start

    def reset(self, key):
        start = jax.random.uniform(key)
        start = jax.pure_callback(self._record, jax.ShapeDtypeStruct((), jnp.float32), start,
                                  vmap_method="broadcast_all")
        state = (start, jnp.zeros((), jnp.int32))
        return state, jnp.stack([start, 0.0])

    def step(self, key, state, action):
        start, t = state
        state = (start, t + 1)
        obs = jnp.stack([start, (t + 1).astype(jnp.float32)])
        return state, obs, jnp.ones(()), action == 1, jnp.zeros((), bool), {}


def _step_all(env, keys, state, actions):
    return jax.vmap(env.step)(keys, state, actions)


@pytest.fixture(scope="module")
def start():
    keys = jax.random.split(jax.random.key(0), NUM_ENVS)
    return keys, jax.vmap(Scripted().reset)(keys)


def test_pool_hands_fresh_starts_to_the_finished_envs_in_order(start):
    keys, (state, _) = start
    base = Scripted()
    env = AutoReset(base, reset_ratio=3)  # K = 2 starts per step for 6 envs
    step_keys = jax.random.split(jax.random.key(1), NUM_ENVS)
    done = jnp.array([0, 1, 1, 0, 1, 0])
    new_state, obs, _, terminated, _, info = _step_all(env, step_keys, state, done)
    jax.block_until_ready(obs)
    assert base.reset_batches == [(2,)]  # two resets, not six
    # The pool: resets from the first two envs' reset keys (AutoReset splits each env's key).
    reset_keys = jax.vmap(lambda k: jax.random.split(k)[1])(step_keys)
    pool = [float(jax.random.uniform(reset_keys[i])) for i in range(2)]
    expected_start = np.array(state[0])
    expected_start[[1, 2, 4]] = [pool[0], pool[1], pool[0]]  # j-th finished env: pool[j mod 2]
    np.testing.assert_allclose(new_state[0], expected_start, rtol=1e-6)
    np.testing.assert_array_equal(new_state[1], [1, 0, 0, 1, 0, 1])
    np.testing.assert_allclose(obs[:, 0], expected_start, rtol=1e-6)
    # The final observation is the pre-reset one.
    np.testing.assert_allclose(info["final_observation"][:, 0], state[0], rtol=1e-6)
    np.testing.assert_array_equal(info["final_observation"][:, 1], 1.0)
    np.testing.assert_array_equal(terminated, done.astype(bool))


def test_no_fresh_start_is_computed_when_no_env_finished(start):
    """The pool is generated only at a step where some env finished (one jitted step, the
    envs' vmap the only one): a step with no episode end computes no reset and leaves every
    state as stepped; a later step with an end still gets its fresh start."""
    _, (state, _) = start
    base = Scripted()
    env = AutoReset(base, reset_ratio=3)
    step = jax.jit(lambda k, s, a: _step_all(env, k, s, a))
    step_keys = jax.random.split(jax.random.key(4), NUM_ENVS)
    none_done = step(step_keys, state, jnp.zeros(NUM_ENVS, jnp.int32))
    jax.block_until_ready(none_done)
    assert base.reset_batches == []
    np.testing.assert_array_equal(none_done[0][0], state[0])
    np.testing.assert_array_equal(none_done[0][1], 1)
    one_done = step(step_keys, state, jnp.array([0, 0, 0, 0, 0, 1]))
    jax.block_until_ready(one_done)
    assert base.reset_batches == [(2,)]
    reset_key = jax.random.split(step_keys[0])[1]
    np.testing.assert_allclose(one_done[0][0][5], jax.random.uniform(reset_key), rtol=1e-6)


def test_reset_ratio_one_is_the_unpooled_reset(start):
    _, (state, _) = start
    step_keys = jax.random.split(jax.random.key(2), NUM_ENVS)
    done = jnp.array([1, 0, 1, 1, 0, 1])
    pooled = _step_all(AutoReset(Scripted(), reset_ratio=1), step_keys, state, done)
    plain = _step_all(AutoReset(Scripted()), step_keys, state, done)
    for a, b in zip(jax.tree.leaves(pooled), jax.tree.leaves(plain)):
        np.testing.assert_array_equal(a, b)


def test_pools_are_per_seed_under_an_outer_vmap(start):
    """Seeds (outer vmap) each pool their own envs (the inner vmap): seed s's finished envs get
    seed s's resets, equal to stepping that seed alone."""
    _, (state, _) = start
    env = AutoReset(Scripted(), reset_ratio=NUM_ENVS)  # one start per step per seed
    keys = jax.random.split(jax.random.key(3), (2, NUM_ENVS))
    states = jax.tree.map(lambda x: jnp.stack([x, x + 1]), state)
    done = jnp.array([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 1]])
    both = jax.jit(jax.vmap(lambda k, s, a: _step_all(env, k, s, a)))(keys, states, done)
    for seed in range(2):
        alone = _step_all(env, keys[seed], jax.tree.map(lambda x: x[seed], states), done[seed])
        for a, b in zip(jax.tree.leaves(both), jax.tree.leaves(alone)):
            np.testing.assert_allclose(a[seed], b, rtol=1e-6)
    starts = np.asarray(both[0][0])
    assert starts[0, 0] == starts[0, 3] and starts[1, 1] == starts[1, 5]  # shared within a seed
    assert starts[0, 0] != starts[1, 1]


def test_bad_reset_ratio_is_refused():
    with pytest.raises(ValueError, match="reset_ratio"):
        AutoReset(Scripted(), reset_ratio=0)
