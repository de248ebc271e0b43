"""The Brax adapter: time limits are truncations with the true final observation, and every
episode starts from a fresh reset."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax

pytestmark = pytest.mark.slow  # the quick subset (-m "not slow") leaves this file out

pytest.importorskip("brax")


@pytest.fixture(scope="module")
def pendulum():
    env = pgjax.envs.make("brax/inverted_pendulum", episode_length=5)
    return env, jax.jit(env.step), jax.jit(env.reset)


def test_time_limit_truncates_and_keeps_the_final_observation(pendulum):
    env, step, reset = pendulum
    physics_step = jax.jit(env.env.brax_env.step)
    state, obs = reset(jax.random.key(0))
    starts, flags = [np.asarray(obs)], []
    for t in range(10):
        previous = state
        state, obs, reward, terminated, truncated, info = step(jax.random.key(t + 1), state,
                                                               jnp.zeros(1))
        flags.append((bool(terminated), bool(truncated)))
        if truncated:
            # The final observation is the pre-reset one: one more physics step from the
            # previous state; the returned observation starts the next episode.
            expected = physics_step(previous.brax_state, jnp.zeros(1)).obs
            np.testing.assert_allclose(info["final_observation"], expected, atol=1e-6)
            assert not np.allclose(info["final_observation"], obs)
            starts.append(np.asarray(obs))
        else:
            np.testing.assert_array_equal(info["final_observation"], obs)
    assert flags == [(False, False)] * 4 + [(False, True)] + [(False, False)] * 4 + [
        (False, True)]
    assert not np.allclose(starts[0], starts[1]) and not np.allclose(starts[1], starts[2])


def test_unknown_brax_name_and_bad_episode_length():
    with pytest.raises(ValueError, match="unknown environment"):
        pgjax.make_config("ppo", "brax/hoper")
    with pytest.raises(ValueError, match="episode_length"):
        pgjax.envs.make("brax/hopper", episode_length=0)


def test_importing_pgjax_does_not_import_brax():
    code = ("import sys, pgjax; pgjax.envs.make('CartPole-v1'); "
            "pgjax.make_config('ppo', 'Pendulum-v1'); print('brax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
