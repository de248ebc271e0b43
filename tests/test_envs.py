import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax import envs


@pytest.fixture(scope="module")
def short_cartpole():
    return envs.make("gymnax/CartPole-v1", max_steps_in_episode=6)


def test_bare_id_means_gymnax():
    assert envs.canonical_id("CartPole-v1") == "gymnax/CartPole-v1"
    assert set(envs.list_envs()) >= {f"gymnax/{i}" for i in gymnax.registered_envs}


def test_unknown_id_names_close_matches():
    with pytest.raises(ValueError, match="CartPole-v1"):
        envs.make("CartPol-v1")


def test_time_limit_hands_back_true_final_observation(short_cartpole):
    """A scripted CartPole episode that hits the time limit: the adapter reports truncated (not
    terminated), the obs returned is the next episode's first, and final_observation is the
    observation the last step really produced (checked against gymnax's own step_env)."""
    env = envs.EpisodeStats(short_cartpole)
    gym_env, params = gymnax.make("CartPole-v1")
    params = params.replace(max_steps_in_episode=6)
    key = jax.random.key(3)
    state, obs = env.reset(key)
    step = jax.jit(env.step)
    for t in range(6):
        key, k = jax.random.split(key)
        action = jnp.int32(t % 2)  # alternate: the pole stays up for 6 steps
        inner = state.env_state
        state, obs, reward, terminated, truncated, info = step(k, state, action)
        expected_obs, *_ = gym_env.step_env(jax.random.split(k)[0], inner, action, params)
        np.testing.assert_allclose(info["final_observation"], expected_obs, rtol=1e-6)
        assert not bool(terminated)
        assert bool(truncated) == (t == 5)
    assert not np.allclose(obs, info["final_observation"])  # obs is the reset observation
    assert float(info["episode_return"]) == 6.0 and int(info["episode_length"]) == 6
    assert bool(info["episode_done"])
    assert float(state.episode_return) == 0.0  # the tracker restarts with the new episode


def test_consecutive_episodes_start_from_different_states(short_cartpole):
    state, _ = short_cartpole.reset(jax.random.key(0))
    starts = []
    key = jax.random.key(1)
    for t in range(18):
        key, k = jax.random.split(key)
        state, obs, _, _, truncated, _ = short_cartpole.step(k, state, jnp.int32(t % 2))
        if truncated:
            starts.append(np.asarray(obs))
    assert len(starts) == 3 and not np.allclose(starts[0], starts[1])


class LineWorld:
    """A user's own env: walk on a line, +1 reward at x ≥ 3, time limit 10. No auto-reset:
    wrapped in envs.AutoReset."""

    observation_space = envs.Box.make(-10.0, 10.0, (1,))
    action_space = envs.Discrete(2)

    def reset(self, key):
        return (jnp.zeros(()), jnp.zeros((), jnp.int32)), jnp.zeros((1,))

    def step(self, key, state, action):
        x, t = state
        x = x + jnp.where(action == 1, 1.0, -1.0)
        t = t + 1
        terminated = x >= 3
        return ((x, t), x[None], terminated.astype(jnp.float32), terminated, t >= 10, {})


def test_users_env_trains_without_registration():
    env = envs.AutoReset(LineWorld())
    config = pgjax.make_config("ppo", env, num_envs=4, num_steps=16, num_minibatches=2,
                               num_epochs=1, total_timesteps=128)
    state, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(0))
    assert metrics["episodic_return"].shape == (2,)
    assert np.isfinite(np.asarray(metrics["policy_loss"])).all()


class FreeWalk:
    """A user's own env with unbounded continuous actions: x += a, reward −x², time limit 5."""

    observation_space = envs.Box.make(-np.inf, np.inf, (1,))
    action_space = envs.Box.make([-np.inf, -1.0], [1.0, np.inf], (2,))

    def reset(self, key):
        return (jnp.zeros(()), jnp.zeros((), jnp.int32)), jnp.zeros((1,))

    def step(self, key, state, action):
        x, t = state
        x, t = x + action.sum(), t + 1
        return ((x, t), x[None], -x**2, jnp.bool_(False), t >= 5, {"final_observation": x[None]})


def test_tanh_head_on_infinite_action_bounds_is_refused():
    env = envs.AutoReset(FreeWalk())
    assert pgjax.make_config("ppo", env).action_head == "clip"  # clipping at ±inf is fine
    with pytest.raises(ValueError, match=r"^action_head: 'tanh' squashes actions into the "
                                         r"action bounds.*infinite.*action_head='clip' or "
                                         r"give the action space finite bounds$"):
        pgjax.make_config("ppo", env, action_head="tanh")
    assert pgjax.make_config("ppo", "Pendulum-v1", action_head="tanh").action_head == "tanh"


def test_non_protocol_object_is_refused():
    with pytest.raises(TypeError, match="protocol"):
        envs.make(object())


def test_mask_observation_keeps_the_named_dimensions():
    full = pgjax.envs.make("CartPole-v1")
    masked = pgjax.envs.make("StatelessCartPole-v1")
    assert pgjax.envs.canonical_id("StatelessCartPole-v1") == "pomdp/StatelessCartPole-v1"
    assert masked.observation_space.shape == (2,)
    key = jax.random.key(3)
    (s_full, o_full), (s_masked, o_masked) = full.reset(key), masked.reset(key)
    np.testing.assert_array_equal(o_masked, o_full[jnp.array([0, 2])])
    for t in range(30):  # past an episode end: the final observation is masked too
        k = jax.random.fold_in(key, t)
        s_full, o_full, r_full, term, trunc, i_full = full.step(k, s_full, 1)
        s_masked, o_masked, r_masked, _, _, i_masked = masked.step(k, s_masked, 1)
        np.testing.assert_array_equal(o_masked, o_full[jnp.array([0, 2])])
        np.testing.assert_array_equal(i_masked["final_observation"],
                                      i_full["final_observation"][jnp.array([0, 2])])
        assert r_full == r_masked
    assert pgjax.envs.make("StatelessPendulum-v1").observation_space.shape == (2,)
    assert "pomdp/StatelessPendulum-v1" in pgjax.envs.list_envs()
    with pytest.raises(ValueError, match="distinct indices in 0..3"):
        pgjax.envs.MaskObservation(full, [0, 4])


def test_a_stateless_env_trains_through_make_train():
    config = pgjax.make_config("ppo", "StatelessCartPole-v1", total_timesteps=1024, num_envs=4,
                               num_steps=32, num_minibatches=2, num_epochs=1)
    _, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(0))
    assert config.env_id == "pomdp/StatelessCartPole-v1"
    assert np.isfinite(metrics["policy_loss"]).all() and metrics["nonfinite"].max() == 0
