"""Using a trained policy: ``make_policy`` turns trained parameters into a jittable ``act``, and
``evaluate`` plays whole episodes with it (vmappable over seeds).

A policy trained with observation normalisation needs the running statistics it saw: pass the
final :class:`pgjax.TrainState` (they are read from its env state) or ``obs_moments``
explicitly. Evaluation applies them frozen, exactly as in training, and reports unscaled
returns.
"""

from __future__ import annotations

import flax.serialization
import jax
import jax.numpy as jnp
from flax import struct

from pgjax import envs as envs_lib
from pgjax.checks import check_count
from pgjax.config import Config, resolve_defaults
from pgjax.envs.normalize import RunningMoments, normalize_observation, observation_moments
from pgjax.keys import typed_key
from pgjax.networks import ActorCriticParams
from pgjax.rollout import env_action
from pgjax.trainer import TrainState, make_network


@struct.dataclass
class TrainedPolicy:
    """What acting needs: the actor parameters and the observation statistics (or None)."""

    actor: object
    obs_moments: RunningMoments | None = None


def trained_policy(config: Config, params, obs_moments=None) -> TrainedPolicy:
    """Collect the actor parameters and observation statistics from ``params``: a single-seed
    :class:`pgjax.TrainState` (index a vmapped one first), :class:`ActorCriticParams` or a
    :class:`TrainedPolicy`."""
    config = resolve_defaults(config)
    if isinstance(params, TrainedPolicy):
        return params
    if isinstance(params, TrainState):
        if obs_moments is None and observation_moments(params.env_state) is not None:
            # Leaves are [num_envs, ...]; every env holds the same copy: take the first.
            obs_moments = jax.tree.map(lambda x: x[0], observation_moments(params.env_state))
        params = params.params
    if isinstance(params, ActorCriticParams):
        params = params.actor
    if config.normalize_observations and obs_moments is None:
        raise ValueError("obs_moments: this config normalises observations; pass the final "
                         "TrainState or the observation statistics it trained with")
    return TrainedPolicy(params, obs_moments if config.normalize_observations else None)


def make_policy(config: Config, params, obs_moments=None):
    """A jittable ``act(key, obs, deterministic=False) -> action`` for one observation (vmap it
    for a batch); continuous actions are as the env receives them (clipped to a Box's
    bounds, or squashed into them for ``action_head="tanh"``). ``key``:
    ``jax.random.key(seed)`` or a legacy ``jax.random.PRNGKey(seed)``, the same action.

    A recurrent policy (``memory="gru"``) carries the actor's cell state across steps:
    ``act(key, obs, memory, deterministic=False) -> (action, memory)``, starting each episode
    from :func:`initial_memory` (as training zeroes it after every episode end).

    Example:
      >>> import jax, pgjax
      >>> config = pgjax.make_config("ppo", "CartPole-v1", total_timesteps=2048)
      >>> state, _ = jax.jit(pgjax.make_train(config))(jax.random.key(0))
      >>> act = pgjax.make_policy(config, state)
      >>> int(act(jax.random.key(1), jax.numpy.zeros(4), deterministic=True)) in (0, 1)
      True
    """
    config = resolve_defaults(config)
    policy = trained_policy(config, params, obs_moments)
    env = envs_lib.make(config.env, **dict(config.env_kwargs))
    network = make_network(config, env)

    def action_of(key, distribution, deterministic):
        action = distribution.mode() if deterministic else distribution.sample(typed_key(key))
        return env_action(env.action_space, action, network.squash)

    def normalized(obs):
        if policy.obs_moments is None:
            return obs
        return normalize_observation(policy.obs_moments, obs)

    if config.recurrent:
        def act_recurrent(key, obs, memory, deterministic=False):
            distribution, memory = network.policy_step(
                policy.actor, memory, normalized(obs), jnp.zeros(memory.shape[:-1], bool))
            return action_of(key, distribution, deterministic), memory

        return act_recurrent

    def act(key, obs, deterministic=False):
        return action_of(key, network.policy(policy.actor, normalized(obs)), deterministic)

    return act


def initial_memory(config: Config) -> jax.Array:
    """A recurrent policy's cell state at an episode's start, ``[memory_size]`` zeros (the
    ``memory`` argument of :func:`make_policy`'s ``act``)."""
    config = resolve_defaults(config)
    if not config.recurrent:
        raise ValueError("initial_memory: this config's policy is feed-forward (memory='none')")
    return jnp.zeros((config.memory_size,), jnp.float32)


def evaluate(config: Config, params, key, num_episodes: int = 16, *, deterministic=False,
             obs_moments=None, max_steps: int = 100_000):
    """Undiscounted returns of ``num_episodes`` episodes, ``[num_episodes]``.

    The episodes run in parallel envs, each until its first episode ends (NaN for an episode
    still running after ``max_steps``). Pure and jittable in ``params`` and ``key``, so
    ``jax.vmap(lambda p, k: evaluate(config, p, k))`` evaluates every seed at once. ``key``:
    ``jax.random.key(seed)`` or a legacy ``jax.random.PRNGKey(seed)``, the same episodes.
    """
    check_count("num_episodes", num_episodes)  # on the host: static, shapes the program
    check_count("max_steps", max_steps)
    config = resolve_defaults(config)
    policy = make_policy(config, params, obs_moments)
    if config.recurrent:  # each env plays one episode: its memory starts at zero, never reset
        act = jax.vmap(policy, in_axes=(0, 0, 0, None))
        memory = jnp.zeros((num_episodes, config.memory_size), jnp.float32)
    else:
        act = jax.vmap(lambda key, obs, memory, deterministic: (
            policy(key, obs, deterministic), memory), in_axes=(0, 0, None, None))
        memory = None
    env = envs_lib.EpisodeStats(envs_lib.make(config.env, **dict(config.env_kwargs)))
    key_reset, key = jax.random.split(typed_key(key))
    env_state, obs = jax.vmap(env.reset)(jax.random.split(key_reset, num_episodes))
    nan = jnp.full((num_episodes,), jnp.nan, jnp.float32)

    def running(carry):
        *_, returns, t = carry
        return jnp.logical_and(jnp.isnan(returns).any(), t < max_steps)

    def step(carry):
        env_state, obs, memory, key, returns, t = carry
        key, key_act, key_env = jax.random.split(key, 3)
        action, memory = act(jax.random.split(key_act, num_episodes), obs, memory,
                             deterministic)
        env_state, obs, _, terminated, truncated, info = jax.vmap(env.step)(
            jax.random.split(key_env, num_episodes), env_state, action)
        first_end = jnp.logical_and(jnp.logical_or(terminated, truncated), jnp.isnan(returns))
        returns = jnp.where(first_end, info["episode_return"], returns)
        return env_state, obs, memory, key, returns, t + 1

    carry = (env_state, obs, memory, key, nan, jnp.zeros((), jnp.int32))
    return jax.lax.while_loop(running, step, carry)[4]


POLICY_FILE = "policy.msgpack"


def save_policies(path, config: Config, final_state: TrainState) -> None:
    """Write the trained policy of every seed of a vmapped ``final_state`` (actor parameters
    and observation statistics) to ``path`` (flax msgpack)."""
    policies = jax.vmap(lambda s: trained_policy(config, s))(final_state)
    with open(path, "wb") as f:
        f.write(flax.serialization.to_bytes(jax.device_get(policies)))


def load_policies(path, config: Config, seeds: int) -> TrainedPolicy:
    """Read what :func:`save_policies` wrote: a :class:`TrainedPolicy` with a leading seed
    axis."""
    from pgjax.trainer import make_trainer

    init = make_trainer(config).init
    target = jax.eval_shape(jax.vmap(lambda k: trained_policy(config, init(k))),
                            jax.random.split(jax.random.key(0), seeds))
    target = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), target)
    with open(path, "rb") as f:
        return flax.serialization.from_bytes(target, f.read())
