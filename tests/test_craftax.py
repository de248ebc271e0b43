"""The Craftax adapter: a time limit is a truncation with the true final observation and a
fresh world after it; a death is a termination; achievements are reported."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax

pytestmark = pytest.mark.slow  # the quick subset (-m "not slow") leaves this file out

pytest.importorskip("craftax")

NAME = "craftax/Craftax-Classic-Symbolic-v1"
NOOP = 0


@pytest.fixture(scope="module")
def short():
    env = pgjax.envs.make(NAME, max_timesteps=5, reset_ratio=None)
    return env, jax.jit(env.step), jax.jit(env.reset)


def test_time_limit_truncates_and_keeps_the_final_observation(short):
    env, step, reset = short
    inner_step = jax.jit(env.env.step)  # CraftaxEnv's, no auto-reset
    state, obs = reset(jax.random.key(0))
    starts, flags = [np.asarray(obs)], []
    for t in range(10):
        previous, key = state, jax.random.key(t + 1)
        state, obs, reward, terminated, truncated, info = step(key, state, NOOP)
        flags.append((bool(terminated), bool(truncated)))
        expected = inner_step(jax.random.split(key)[0], previous, NOOP)[1]
        # another program than the wrapped step's: equal up to float32 rounding
        np.testing.assert_allclose(info["final_observation"], expected, rtol=1e-6, atol=1e-7)
        if truncated:
            assert not np.array_equal(info["final_observation"], obs)
            starts.append(np.asarray(obs))
        else:  # (XLA may compute the two in different kernels: rounding may differ)
            np.testing.assert_allclose(info["final_observation"], obs, rtol=1e-6, atol=1e-7)
    assert flags == ([(False, False)] * 4 + [(False, True)]) * 2
    # Each episode starts in a fresh world.
    assert not np.array_equal(starts[0], starts[1]) and not np.array_equal(starts[1], starts[2])


def test_death_terminates_and_achievements_are_counted(short):
    env, step, reset = short
    state, _ = reset(jax.random.key(5))
    dying = state.replace(player_health=jnp.zeros_like(state.player_health))
    _, _, _, terminated, truncated, info = step(jax.random.key(6), dying, NOOP)
    assert bool(terminated) and not bool(truncated)
    unlocked = state.replace(achievements=state.achievements.at[:3].set(True))
    _, _, _, _, _, info = step(jax.random.key(7), unlocked, NOOP)
    assert float(info["achievements"]) == 3.0


def test_unknown_name_and_parameter():
    with pytest.raises(ValueError, match="Craftax-Classic-Symbolic-v1"):
        pgjax.make_config("ppo", "craftax/Craftax-Clasic-Symbolic-v1")
    with pytest.raises(ValueError, match="max_timesteps"):
        pgjax.envs.make(NAME, max_timestep=5)


def test_importing_pgjax_does_not_import_craftax():
    code = ("import sys, pgjax; pgjax.envs.make('CartPole-v1'); "
            "pgjax.make_config('ppo', 'Pendulum-v1'); print('craftax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_training_reports_achievements_per_finished_episode():
    config = pgjax.make_config("ppo", NAME, num_envs=4, num_steps=16, num_epochs=1,
                               num_minibatches=2, total_timesteps=4 * 16 * 2,
                               env_kwargs=(("max_timesteps", 8),))
    assert pgjax.trainer.metric_names(config)[-1] == "achievements"
    _, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(0))
    achievements = np.asarray(metrics["achievements"])
    assert achievements.shape == (2,) and np.all(np.isfinite(achievements))
    assert np.all((achievements >= 0) & (achievements <= 22))


def test_episode_metrics_average_the_reported_info_over_finished_episodes():
    from pgjax.trainer import episode_metrics

    class Traj:
        done = jnp.array([[True, False], [False, True], [True, True]])
        episode_return = jnp.array([[1.0, 9.0], [9.0, 3.0], [5.0, 7.0]])
        episode_length = jnp.ones((3, 2))
        episode_info = {"achievements": jnp.array([[2.0, 50.0], [50.0, 4.0], [0.0, 6.0]])}

    metrics = episode_metrics(Traj)
    assert float(metrics["episodes"]) == 4
    np.testing.assert_allclose(metrics["achievements"], (2 + 4 + 0 + 6) / 4)
    np.testing.assert_allclose(metrics["episodic_return"], (1 + 3 + 5 + 7) / 4)
