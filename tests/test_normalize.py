"""Normalisation wrappers: running statistics equal numpy's over the same stream, merged across
envs through the named vmap axis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax.envs import ENV_AXIS, NormalizeObservation, NormalizeReward, RunningMoments
from pgjax.envs.core import Box


class RandomWalk:
    """A tiny protocol env: observation = position (3 dims) drifting by the action plus noise;
    reward = first coordinate; ends after 4 steps."""

    observation_space = Box.make(-np.inf, np.inf, (3,))
    action_space = Box.make(-1.0, 1.0, (3,))

    def reset(self, key):
        obs = 2.0 + jax.random.normal(key, (3,))
        return (obs, jnp.zeros((), jnp.int32)), obs

    def step(self, key, state, action):
        pos, t = state
        obs = pos + action + jax.random.normal(key, (3,))
        t = t + 1
        done = t >= 4
        return ((obs, jnp.where(done, 0, t)), obs, obs[0], jnp.bool_(False), done,
                {"final_observation": obs})


def test_merge_matches_numpy_on_concatenated_batches():
    rng = np.random.default_rng(0)
    data = [rng.normal(3.0, 2.0, size=(n, 2)) for n in (5, 1, 17, 8)]
    moments = RunningMoments(jnp.float32(0.0), jnp.zeros(2), jnp.zeros(2))
    for batch in data:
        moments = moments.merge(batch.mean(0), batch.var(0), len(batch))
    everything = np.concatenate(data)
    np.testing.assert_allclose(moments.mean, everything.mean(0), rtol=1e-5)
    np.testing.assert_allclose(moments.var, everything.var(0), rtol=1e-4)
    assert float(moments.count) == len(everything)


@pytest.mark.parametrize("num_envs", [1, 6])
def test_observation_statistics_over_envs_and_steps(num_envs):
    env = NormalizeObservation(RandomWalk(), clip=1e9)
    reset = jax.vmap(env.reset, axis_name=ENV_AXIS)
    step = jax.jit(jax.vmap(env.step, axis_name=ENV_AXIS))
    state, obs = reset(jax.random.split(jax.random.key(0), num_envs))
    raw = [np.asarray(state.env_state[0])]
    for t in range(7):
        keys = jax.random.split(jax.random.key(t + 1), num_envs)
        action = jnp.full((num_envs, 3), 0.5)
        state, obs, *_ = step(keys, state, action)
        raw_obs = obs * jnp.sqrt(state.moments.var + env.epsilon) + state.moments.mean
        raw.append(np.asarray(raw_obs))
    raw = np.concatenate(raw)
    # Every env holds the same statistics: those of all envs' observations so far.
    for leaf in jax.tree.leaves(state.moments):
        assert np.allclose(leaf, leaf[:1])
    np.testing.assert_allclose(state.moments.mean[0], raw.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state.moments.var[0], raw.var(0), rtol=1e-3, atol=1e-4)


def test_reward_scaling_uses_the_discounted_return_reset_at_episode_end():
    gamma, num_envs = 0.9, 4
    env = NormalizeReward(RandomWalk(), gamma, clip=1e9)
    state, _ = jax.vmap(env.reset, axis_name=ENV_AXIS)(jax.random.split(jax.random.key(0),
                                                                         num_envs))
    step = jax.jit(jax.vmap(env.step, axis_name=ENV_AXIS))
    returns, g = [], np.zeros(num_envs)
    for t in range(9):
        keys = jax.random.split(jax.random.key(t + 1), num_envs)
        state, obs, scaled, _, truncated, _ = step(keys, state, jnp.zeros((num_envs, 3)))
        reward = np.asarray(obs[:, 0])
        g = gamma * g + reward
        returns.append(g.copy())
        g = np.where(np.asarray(truncated), 0.0, g)
        np.testing.assert_allclose(state.discounted_return, g, rtol=1e-5, atol=1e-5)
        expected = reward / np.sqrt(np.concatenate(returns).var() + 1e-8)
        np.testing.assert_allclose(scaled, expected, rtol=2e-3)


def test_continuous_control_normalises_by_default_and_discrete_does_not():
    pendulum = pgjax.make_config("ppo", "Pendulum-v1")
    cartpole = pgjax.make_config("ppo", "CartPole-v1")
    assert pendulum.normalize_observations and pendulum.normalize_rewards
    assert not cartpole.normalize_observations and not cartpole.normalize_rewards
    off = pgjax.make_config("ppo", "Pendulum-v1", normalize_rewards="false")
    assert off.normalize_observations and not off.normalize_rewards
