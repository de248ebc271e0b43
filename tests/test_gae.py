import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import gae
from pgjax.advantages import normalize


def gae_loop(rewards, values, next_values, terminated, done, gamma, lam):
    """Plain numpy reference, one step at a time, backwards."""
    T = len(rewards)
    adv = np.zeros(T)
    next_adv = 0.0
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * (1 - terminated[t]) * next_values[t] - values[t]
        next_adv = delta + gamma * lam * (1 - done[t]) * next_adv
        adv[t] = next_adv
    return adv, adv + values


@pytest.fixture(scope="module")
def episode_data():
    rng = np.random.default_rng(0)
    T = 12
    rewards = rng.normal(size=T)
    values = rng.normal(size=T)
    next_values = np.append(values[1:], rng.normal())
    terminated = np.zeros(T)
    truncated = np.zeros(T)
    truncated[4] = 1  # a time limit in the middle of the rollout: bootstrap from the final obs
    next_values[4] = rng.normal()  # V(final obs) differs from V(first obs of next episode)
    terminated[8] = truncated[8] = 1  # both: terminal wins, no bootstrap
    next_values[8] = rng.normal()
    done = np.maximum(terminated, truncated)
    return rewards, values, next_values, terminated, done


@pytest.mark.parametrize("jit", [False, True])
def test_gae_matches_numpy_loop(episode_data, jit):
    fn = jax.jit(gae, static_argnames=()) if jit else gae
    adv, ret = fn(*map(jnp.asarray, episode_data), gamma=0.97, lambda_=0.9)
    ref_adv, ref_ret = gae_loop(*episode_data, 0.97, 0.9)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)


def test_gae_truncation_bootstraps_and_terminal_does_not(episode_data):
    rewards, values, next_values, terminated, done = episode_data
    adv, _ = gae(*map(jnp.asarray, episode_data), gamma=0.97, lambda_=0.9)
    # At a truncation the trace is cut and the final obs is bootstrapped: A = δ_t exactly.
    np.testing.assert_allclose(adv[4], rewards[4] + 0.97 * next_values[4] - values[4], rtol=1e-5)
    # At a step both terminated and truncated nothing is bootstrapped.
    np.testing.assert_allclose(adv[8], rewards[8] - values[8], rtol=1e-5)


def test_gae_batched_time_major_equals_per_env(episode_data):
    cols = [np.stack([x, x[::-1]], axis=1) for x in episode_data]  # [T, 2]
    adv, ret = gae(*map(jnp.asarray, cols), gamma=0.99, lambda_=0.95)
    for b in range(2):
        ref_adv, _ = gae_loop(*(c[:, b] for c in cols), 0.99, 0.95)
        np.testing.assert_allclose(adv[:, b], ref_adv, rtol=1e-5, atol=1e-5)


def test_gae_lambda_limits(episode_data):
    rewards, values, next_values, terminated, done = map(jnp.asarray, episode_data)
    adv0, _ = gae(rewards, values, next_values, terminated, done, gamma=0.9, lambda_=0.0)
    np.testing.assert_allclose(adv0, rewards + 0.9 * (1 - terminated) * next_values - values,
                               rtol=1e-5, atol=1e-6)


def test_normalize_guards_single_element():
    np.testing.assert_allclose(normalize(jnp.array([3.0])), [3.0])
    x = normalize(jnp.arange(10.0))
    assert abs(float(x.mean())) < 1e-6 and abs(float(x.std()) - 1.0) < 1e-5
