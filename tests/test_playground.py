"""The MuJoCo Playground adapter: a time limit is a truncation with the true final observation,
each episode starts from a fresh reset, dict observations give the policy one key, and envs
vmapped over seeds step as each alone."""

import subprocess
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax

pytestmark = pytest.mark.slow  # the quick subset (-m "not slow") leaves this file out

pytest.importorskip("mujoco_playground")

TINY = dict(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=2, total_timesteps=2 * 8 * 2)


@pytest.fixture(scope="module")
def cartpole():
    env = pgjax.envs.make("playground/CartpoleBalance", episode_length=5)
    return env, jax.jit(env.step), jax.jit(env.reset)  # (op by op, a reset took 15 s)


def test_time_limit_truncates_and_keeps_the_final_observation(cartpole):
    env, step, reset = cartpole
    inner = env.env  # PlaygroundEnv, no auto-reset
    state, obs = reset(jax.random.key(0))
    starts, flags = [np.asarray(obs)], []
    action = jnp.full((1,), 0.5)
    physics_step = jax.jit(inner.brax_env.step)
    for t in range(10):
        previous = state
        state, obs, reward, terminated, truncated, info = step(jax.random.key(t + 1), state,
                                                               action)
        flags.append((bool(terminated), bool(truncated)))
        # The final observation is the pre-reset one: one more physics step (action_repeat
        # of them) from the previous state.
        expected = previous.brax_state
        for _ in range(inner.action_repeat):
            expected = physics_step(expected, action)
        np.testing.assert_allclose(info["final_observation"], expected.obs, atol=1e-5)
        if truncated:
            assert not np.allclose(info["final_observation"], obs)
            starts.append(np.asarray(obs))
        else:
            np.testing.assert_array_equal(info["final_observation"], obs)
    assert flags == ([(False, False)] * 4 + [(False, True)]) * 2
    # Every episode starts from a fresh reset of its own key.
    assert not np.allclose(starts[0], starts[1]) and not np.allclose(starts[1], starts[2])


def test_action_repeat_sums_the_rewards():
    repeated = pgjax.envs.make("playground/CartpoleBalance", episode_length=6,
                               action_repeat=3)
    state, _ = jax.jit(repeated.reset)(jax.random.key(0))
    action = jnp.full((1,), -0.3)
    _, _, reward, _, truncated, _ = jax.jit(repeated.step)(jax.random.key(1), state, action)
    physics_step, single, total = jax.jit(repeated.env.brax_env.step), state.brax_state, 0.0
    for _ in range(3):
        single = physics_step(single, action)
        total += float(single.reward)
    np.testing.assert_allclose(float(reward), total, rtol=1e-5)
    assert not bool(truncated)  # 3 of the 6 env steps


def test_vmap_over_seeds_equals_loop(cartpole):
    """A population of envs, one per seed, vmapped (as pgjax vmaps seeds) steps as each env
    does alone, across an episode end: MJX's pure-JAX implementation under vmap."""
    env, step, reset = cartpole  # episode_length 5: the 7 steps cross a truncation and reset
    keys = jax.random.split(jax.random.key(3), 2)
    actions = jnp.array([[0.5], [-0.3]])
    batched_reset, batched_step = jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))
    states, observations = batched_reset(keys)
    alone = [reset(key) for key in keys]
    for t in range(7):
        step_keys = jax.random.split(jax.random.key(100 + t), 2)
        states, observations, rewards, _, truncated, _ = batched_step(step_keys, states,
                                                                      actions)
        for i in range(2):
            state, obs, reward, _, trunc, _ = step(step_keys[i], alone[i][0], actions[i])
            alone[i] = (state, obs)
            np.testing.assert_allclose(observations[i], obs, atol=1e-5)
            np.testing.assert_allclose(rewards[i], reward, atol=1e-5)
            assert bool(truncated[i]) == bool(trunc)
    # Seeds differ: the two envs are not one env twice.
    assert not np.allclose(observations[0], observations[1])


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


class Walker(NamedTuple):
    obs: dict
    reward: jax.Array
    done: jax.Array


class PrivilegedWalker:
    """A stand-in MjxEnv whose dict observation has a privileged part (as Playground's
    locomotion tasks have): 3 features for the policy, 7 for the critic only."""

    action_size = 2

    def reset(self, key):
        return self._state(jax.random.normal(key, (10,)))

    def step(self, state, action):
        x = jnp.concatenate([state.obs["state"], state.obs["privileged_state"]])
        return self._state(0.9 * x + jnp.sum(action))

    def _state(self, x):
        return Walker({"state": x[:3], "privileged_state": x[3:]}, jnp.sum(x[:3]),
                      jnp.zeros(()))


def test_privileged_critic_observation_is_seen_by_the_critic_only():
    """critic_observation_key: the observation is the policy's part followed by the
    privileged part; the actor reads the first 3 features only (its output does not move
    when the privileged part does), the critic all 10; it trains; memory is refused."""
    from pgjax.envs import AutoReset
    from pgjax.envs.playground_adapter import PlaygroundEnv
    from pgjax.trainer import make_network

    env = AutoReset(PlaygroundEnv(PrivilegedWalker(), "playground/Walker", 10,
                                  critic_observation_key="privileged_state"))
    assert env.observation_space.shape == (10,) and env.policy_observation_size == 3
    state, obs = env.reset(jax.random.key(0))
    np.testing.assert_array_equal(obs[:3], state.brax_state.obs["state"])
    config = pgjax.make_config("ppo", env, **TINY)
    network = make_network(config, env)
    params = network.init(jax.random.key(1))
    assert params.actor["mlp"][0]["w"].shape[0] == 3
    assert params.critic["mlp"][0]["w"].shape[0] == 10
    moved = obs.at[3:].add(5.0)
    np.testing.assert_array_equal(network.policy(params.actor, moved).mean,
                                  network.policy(params.actor, obs).mean)
    assert not np.allclose(network.value(params.critic, moved), network.value(params.critic, obs))
    _, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(2))
    assert np.isfinite(metrics["value_loss"]).all()
    with pytest.raises(ValueError, match="memory: .*privileged"):
        make_network(config.replace(memory="gru"), env)
    with pytest.raises(ValueError, match="critic_observation_key: 'pixels' is not one of"):
        PlaygroundEnv(PrivilegedWalker(), "playground/Walker", 10,
                      critic_observation_key="pixels")


def test_importing_pgjax_does_not_import_playground():
    code = ("import sys, pgjax; pgjax.envs.make('CartPole-v1'); "
            "pgjax.make_config('ppo', 'Pendulum-v1'); "
            "print('mujoco_playground' in sys.modules, 'mujoco' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False False"


def test_playground_preset_is_playgrounds_brax_ppo_config():
    """``preset="playground"`` holds Playground's published Brax-PPO settings for every DM
    Control task, field by field (dm_control_suite_params.brax_ppo_config and Brax's PPO
    defaults): the same minibatch size and SGD steps per env step, γ, lr, entropy, reward
    scaling, normalisation, networks and budget."""
    from mujoco_playground import registry
    from mujoco_playground.config import dm_control_suite_params

    tasks = registry.dm_control_suite.ALL_ENVS
    assert sorted(tasks) == sorted(pgjax.algorithms.ppo.PLAYGROUND_DM_CONTROL)
    presets = pgjax.algorithms.ALGORITHMS["ppo"].named_presets["playground"]
    built = pgjax.make_config("ppo", "playground/CartpoleBalance", preset="playground")
    assert built == built.replace(**presets["playground/CartpoleBalance"])
    for task in tasks:  # as dicts: make_config would build (compile) each task's model
        brax = dm_control_suite_params.brax_ppo_config(task)
        config = built.replace(**presets[f"playground/{task}"])
        unrolls_per_batch = brax.batch_size * brax.num_minibatches
        assert (config.num_envs, config.num_steps) == (brax.num_envs, brax.unroll_length)
        assert config.minibatch_size == brax.batch_size * brax.unroll_length
        sgd_steps_per_env_step = config.num_epochs * config.num_minibatches / config.batch_size
        assert sgd_steps_per_env_step == pytest.approx(
            brax.num_updates_per_batch * brax.num_minibatches
            / (unrolls_per_batch * brax.unroll_length))
        assert config.total_timesteps * brax.action_repeat == brax.num_timesteps
        assert dict(config.env_kwargs).get("action_repeat", 1) == brax.action_repeat
        assert config.gamma == pytest.approx(brax.discounting)
        assert config.learning_rate == pytest.approx(brax.learning_rate)
        assert not config.anneal_lr
        assert config.ent_coef == pytest.approx(brax.entropy_cost)
        assert config.reward_scale == brax.reward_scaling
        assert config.normalize_observations == brax.normalize_observations
        assert not config.normalize_rewards
        assert (config.clip_epsilon, config.gae_lambda) == pytest.approx((0.3, 0.95))
        assert config.vf_coef == 0.5 and not config.clip_value_loss
        assert (config.actor_hidden, config.critic_hidden) == ((32,) * 4, (256,) * 5)
        assert (config.activation, config.action_head) == ("swish", "tanh")
    assert presets["playground/FingerSpin"]["gamma"] == 0.95
    with pytest.raises(ValueError, match="preset: ppo's 'playground' preset has no settings"):
        pgjax.make_config("ppo", "CartPole-v1", preset="playground")
    with pytest.raises(ValueError, match="preset: trpo has no preset 'playground'"):
        pgjax.make_config("trpo", "playground/CartpoleBalance", preset="playground")


def test_physics_runs_at_full_matmul_precision_and_the_networks_do_not(cartpole):
    """Every matmul of the physics (reset and step) is traced at HIGHEST precision — full
    float32 on GPUs whose default is TF32 — and the policy's are left at the default."""
    env, _, reset = cartpole
    state, obs = reset(jax.random.key(0))
    for program in (jax.make_jaxpr(env.reset)(jax.random.key(0)),
                    jax.make_jaxpr(env.step)(jax.random.key(1), state, jnp.zeros((1,)))):
        text = str(program)  # nested programs included
        dots = text.count("dot_general[")
        assert dots > 10 and text.count("precision=(Precision.HIGHEST, Precision.HIGHEST)") == dots
    config = pgjax.make_config("ppo", "playground/CartpoleBalance", **TINY)
    network = pgjax.trainer.make_network(config, env)
    params = network.init(jax.random.key(0))
    policy = jax.make_jaxpr(lambda o: network.policy(params.actor, o).mean)(obs)
    assert "HIGHEST" not in str(policy)
    with pytest.raises(ValueError, match="matmul_precision: 'fast' is not"):
        pgjax.envs.make("playground/CartpoleBalance", matmul_precision="fast")
