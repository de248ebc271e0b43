"""A gymnax env's step prepared ahead (``prepare_step``: the key's split and the auto-reset
drawn before the rollout's scan) is gymnax's own ``step``, bit for bit; wrappers forward it
only when they hand their key on untouched."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import envs
from pgjax.envs.gymnax_adapter import GymnaxEnv, PreparedStep


def random_actions(env, key, n):
    space = env.action_space
    if isinstance(space, envs.Discrete):
        return jax.random.randint(key, (n,), 0, space.n)
    return jax.random.uniform(key, (n, *space.shape), minval=space.low, maxval=space.high)


@pytest.mark.parametrize("env_id, params", [
    ("CartPole-v1", {"max_steps_in_episode": 6}),
    ("Pendulum-v1", {"max_steps_in_episode": 5}),
    ("Acrobot-v1", {"max_steps_in_episode": 4}),
    ("Breakout-MinAtar", {"max_steps_in_episode": 7}),
])
def test_prepared_steps_are_gymnax_steps(env_id, params):
    """Thirty steps (several episode ends, by time limit or termination) from the same keys:
    the adapter stepping from prepared inputs, from plain keys, and gymnax's own ``step``
    (whose terminations and resets it must reproduce exactly)."""
    env = envs.make(env_id, **params)
    assert hasattr(env, "prepare_step")
    gym_env, gym_params = gymnax.make(env_id)
    gym_params = gym_params.replace(**params)
    num = 30
    keys = jax.random.split(jax.random.key(3), num)
    actions = random_actions(env, jax.random.key(4), num)
    prepared = jax.jit(jax.vmap(env.prepare_step))(keys)
    assert isinstance(prepared, PreparedStep)

    @jax.jit
    def run(inputs):
        def step(carry, x):
            ours, plain, theirs = carry
            key_or_prepared, key, action = x
            ours = env.step(key_or_prepared, ours[0], action)
            plain = env.step(key, plain[0], action)
            obs, state, reward, terminated, truncated, info = gym_env.step(
                key, theirs[0], action, gym_params)
            theirs = (state, obs, reward, terminated, truncated, info["final_observation"])
            return (ours, plain, theirs), (ours[1:5], ours[5]["final_observation"],
                                          plain[1:5], plain[5]["final_observation"], theirs[1:])

        state, obs = env.reset(jax.random.key(0))
        first = (state, obs, 0.0, False, False, {"final_observation": obs})
        carry = (first, first, (state, obs, 0.0, False, False, obs))
        return jax.lax.scan(step, carry, inputs)[1]

    ours, ours_final, plain, plain_final, theirs = run((prepared, keys, actions))
    assert np.asarray(theirs[2] | theirs[3]).sum() >= 3  # episodes ended, resets were taken
    np.testing.assert_array_equal(ours[2], theirs[2])  # terminated
    np.testing.assert_array_equal(ours[3], theirs[3])  # truncated
    # the same operations; XLA may fuse the physics differently inside gymnax's own jitted
    # step, so float results agree to rounding (Acrobot's integrator: 6e-8)
    for got, want in zip((*ours, ours_final), theirs):
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                                   rtol=1e-6, atol=1e-6)
    for got, want in zip(jax.tree.leaves((*plain, plain_final)), jax.tree.leaves(ours)
                         + [ours_final]):
        np.testing.assert_array_equal(got, want)  # prepared or not: one program, bit for bit


def test_wrappers_forward_prepare_step_only_when_they_pass_the_key_on():
    cartpole = envs.make("CartPole-v1")
    stats = envs.EpisodeStats(cartpole)
    assert stats.prepare_step.__self__ is cartpole
    assert hasattr(envs.NormalizeObservation(stats), "prepare_step")
    assert hasattr(envs.NormalizeReward(stats, 0.99), "prepare_step")
    # AutoReset splits its key itself: the key it gets must stay a key
    assert not hasattr(envs.AutoReset(stats), "prepare_step")
    assert not hasattr(envs.EpisodeStats(envs.AutoReset(stats)), "prepare_step")


def test_an_env_with_its_own_step_is_not_prepared():
    deep_sea = envs.make("DeepSea-bsuite")
    assert type(deep_sea) is GymnaxEnv and not hasattr(deep_sea, "prepare_step")
    state, obs = deep_sea.reset(jax.random.key(0))
    out = deep_sea.step(jax.random.key(1), state, jnp.int32(1))
    assert out[1].shape == obs.shape


class PaidWalk:
    """A user's env that prepares its steps: ``prepare_step`` draws the step's reward from the
    key (so a step handed a raw key would fail), and the reward is what was prepared."""

    observation_space = envs.Box.make(-np.inf, np.inf, (1,))
    action_space = envs.Discrete(2)

    def reset(self, key):
        return jnp.zeros(()), jnp.zeros((1,))

    def prepare_step(self, key):
        return {"pay": jax.random.uniform(key)}

    def step(self, inputs, state, action):
        x = state + action
        return x, x[None], inputs["pay"], jnp.bool_(False), jnp.bool_(False), \
            {"final_observation": x[None]}


def test_the_rollout_hands_step_what_prepare_step_made_of_its_key():
    import pgjax
    from pgjax.rollout import rollout, rollout_keys
    from pgjax.trainer import make_env, make_network

    config = pgjax.make_config("ppo", PaidWalk(), num_envs=3, num_steps=5, num_minibatches=1,
                               num_epochs=1, total_timesteps=15)
    env = make_env(config)  # with EpisodeStats, which passes the key on
    network = make_network(config, env)
    state = pgjax.make_trainer(config).init(jax.random.key(0))
    keys = rollout_keys(jax.random.key(2), 5, 3)
    traj = rollout(env, network, state.params.actor, state.env_state, state.obs, keys, 5)[2]
    want = jax.vmap(jax.vmap(lambda k: jax.random.uniform(k)))(keys[:, 1:])
    np.testing.assert_array_equal(traj.reward, want)
