"""The MuJoCo Playground adapter: a time limit is a truncation with the true final observation,
each episode starts from a fresh reset, dict observations give the policy one key, and a run
vmapped over seeds equals the loop."""

import subprocess
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax

pytest.importorskip("mujoco_playground")

TINY = dict(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=2, total_timesteps=2 * 8 * 2)


@pytest.fixture(scope="module")
def cartpole():
    env = pgjax.envs.make("playground/CartpoleBalance", episode_length=5)
    return env, jax.jit(env.step)


def test_time_limit_truncates_and_keeps_the_final_observation(cartpole):
    env, step = cartpole
    inner = env.env  # PlaygroundEnv, no auto-reset
    state, obs = env.reset(jax.random.key(0))
    starts, flags = [np.asarray(obs)], []
    action = jnp.full((1,), 0.5)
    for t in range(10):
        previous = state
        state, obs, reward, terminated, truncated, info = step(jax.random.key(t + 1), state,
                                                               action)
        flags.append((bool(terminated), bool(truncated)))
        # The final observation is the pre-reset one: one more physics step (action_repeat
        # of them) from the previous state.
        expected = previous.brax_state
        for _ in range(inner.action_repeat):
            expected = inner.brax_env.step(expected, action)
        np.testing.assert_allclose(info["final_observation"], expected.obs, atol=1e-5)
        if truncated:
            assert not np.allclose(info["final_observation"], obs)
            starts.append(np.asarray(obs))
        else:
            np.testing.assert_array_equal(info["final_observation"], obs)
    assert flags == ([(False, False)] * 4 + [(False, True)]) * 2
    # Every episode starts from a fresh reset of its own key.
    assert not np.allclose(starts[0], starts[1]) and not np.allclose(starts[1], starts[2])


def test_action_repeat_sums_the_rewards(cartpole):
    env, _ = cartpole
    repeated = pgjax.envs.make("playground/CartpoleBalance", episode_length=6,
                               action_repeat=3)
    state, _ = repeated.reset(jax.random.key(0))
    action = jnp.full((1,), -0.3)
    _, _, reward, _, truncated, _ = repeated.step(jax.random.key(1), state, action)
    single, total = state.brax_state, 0.0
    for _ in range(3):
        single = repeated.env.brax_env.step(single, action)
        total += float(single.reward)
    np.testing.assert_allclose(float(reward), total, rtol=1e-5)
    assert not bool(truncated)  # 3 of the 6 env steps


def test_vmap_over_seeds_equals_loop():
    config = pgjax.make_config("ppo", "playground/CartpoleBalance", **TINY,
                               env_kwargs=(("episode_length", 12),))
    keys = jax.random.split(jax.random.key(3), 2)
    vmapped_state, vmapped_metrics = jax.jit(jax.vmap(pgjax.make_train(config)))(keys)
    train = jax.jit(pgjax.make_train(config))
    for i, key in enumerate(keys):
        state, metrics = train(key)
        for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(vmapped_state.params)):
            np.testing.assert_allclose(a, b[i], atol=1e-5)
        np.testing.assert_allclose(metrics["value_loss"], vmapped_metrics["value_loss"][i],
                                   rtol=1e-4)
    # Seeds differ: the two runs are not one run twice.
    assert not np.allclose(vmapped_metrics["value_loss"][0], vmapped_metrics["value_loss"][1])


def test_unknown_name_bad_lengths_and_observation_key():
    with pytest.raises(ValueError, match="CartpoleBalance"):
        pgjax.make_config("ppo", "playground/CartpoleBalanse")
    with pytest.raises(ValueError, match="episode_length"):
        pgjax.envs.make("playground/CartpoleBalance", episode_length=0)
    with pytest.raises(ValueError, match="action_repeat"):
        pgjax.envs.make("playground/CartpoleBalance", action_repeat=1.5)


class Stand(NamedTuple):
    obs: dict


def test_dict_observations_give_the_policy_one_key():
    from pgjax.envs.playground_adapter import PlaygroundEnv

    class DictObs:  # a stand-in MjxEnv with a dict observation (as locomotion tasks have)
        action_size = 2

        def reset(self, key):
            return Stand({"state": jnp.ones(3), "privileged_state": jnp.ones(7)})

    env = PlaygroundEnv(DictObs(), "playground/DictObs", 10)
    assert env.observation_space.shape == (3,)
    env = PlaygroundEnv(DictObs(), "playground/DictObs", 10, observation_key="privileged_state")
    assert env.observation_space.shape == (7,)
    with pytest.raises(ValueError, match="observation_key.*privileged_state"):
        PlaygroundEnv(DictObs(), "playground/DictObs", 10, observation_key="pixels")


def test_importing_pgjax_does_not_import_playground():
    code = ("import sys, pgjax; pgjax.envs.make('CartPole-v1'); "
            "pgjax.make_config('ppo', 'Pendulum-v1'); "
            "print('mujoco_playground' in sys.modules, 'mujoco' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False False"
