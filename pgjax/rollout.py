"""Collect a time-major batch of transitions with ``lax.scan`` over (policy sample, env step)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.distributions import Categorical, DiagGaussian, TanhGaussian
from pgjax.envs import ENV_AXIS, Box
from pgjax.keys import typed_key
from pgjax.recurrent import reset_state


@struct.dataclass
class Transition:
    """One step of every environment; arrays are ``[num_steps, num_envs, ...]`` after a rollout."""

    obs: jax.Array
    action: jax.Array  #: as sampled (unclipped / pre-tanh for continuous actions)
    log_prob: jax.Array  #: log π_old(action | obs)
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array  #: terminated or truncated
    next_obs: jax.Array  #: the true next observation (pre-reset when the episode ended)
    episode_return: jax.Array  #: undiscounted return of the episode ending here (if done)
    episode_length: jax.Array
    #: what the env reports of the episode ending here (its ``episode_info`` keys of ``info``,
    #: read where ``done``; Craftax: ``achievements``); empty for most envs
    episode_info: dict = struct.field(default_factory=dict)


def env_action(action_space, action, squash: bool = False):
    """The action handed to the env from the stored one: continuous actions are clipped to the
    bounds only here, or, for a tanh-squashed policy (``squash``, actions stored pre-tanh),
    mapped to ``low + (tanh(u) + 1)·(high − low)/2``."""
    if not isinstance(action_space, Box):
        return action
    if squash:
        return action_space.low + (jnp.tanh(action) + 1.0) * (
            0.5 * (action_space.high - action_space.low))
    return jnp.clip(action, action_space.low, action_space.high)


def rollout_keys(key, num_steps: int, num_envs: int):
    """Every key of a rollout in one split, ``[num_steps, 1 + num_envs]`` (the policy's, then
    one per env, for each step): one RNG call instead of two per step, which is quicker to
    compile and to run on CPU. ``key``: typed or legacy (:func:`pgjax.keys.typed_key`), or
    keys of that shape already (the trainer splits them with the update's other keys, in one
    call), returned as they are."""
    if typed_key(key).shape == (num_steps, num_envs + 1):
        return typed_key(key)
    return jax.random.split(typed_key(key), num_steps * (num_envs + 1)).reshape(
        num_steps, num_envs + 1)


def sampling_noise(policy, keys):
    """The noise ``policy.sample(key)`` draws from each of ``keys`` (``[num_steps]``), for
    every step at once: Gumbel noise of the logits' shape (``jax.random.categorical`` is
    ``argmax(logits + g)``), standard-normal noise of the mean's shape (a Gaussian's sample is
    ``μ + σ·z``; a tanh-Gaussian's pre-tanh sample too). ``policy`` only gives the type and
    shapes (``jax.eval_shape`` of the policy is enough); None for any other distribution,
    which then samples from its key at each step. Drawn before the rollout's scan, the noise
    is one RNG call for the whole rollout instead of one per step (each a loop of its own on
    CPU), with the same numbers."""
    if isinstance(policy, Categorical):
        shape, dtype, draw = policy.logits.shape, policy.logits.dtype, jax.random.gumbel
    elif isinstance(policy, (DiagGaussian, TanhGaussian)):
        shape, dtype, draw = policy.mean.shape, policy.mean.dtype, jax.random.normal
    else:
        return None
    return jax.vmap(lambda key: draw(key, shape, dtype))(keys)


def sample_with_noise(policy, noise):
    """``policy.sample(key)`` from the noise :func:`sampling_noise` drew from ``key``."""
    if isinstance(policy, Categorical):
        return jnp.argmax(noise + policy.logits, axis=-1)
    return policy.mean + jnp.exp(policy.log_std) * noise


def act(env, network, policy, env_state, obs, step_keys, noise=None):
    """One vectorised step: sample from ``policy`` (with ``noise`` from
    :func:`sampling_noise` if given, else from key ``step_keys[0]``), step every env with keys
    ``step_keys[1:]``; ``(env_state, next_obs, Transition)``."""
    action = (policy.sample(step_keys[0]) if noise is None
              else sample_with_noise(policy, noise))
    log_prob = policy.log_prob(action)
    # Named axis: wrappers with statistics shared across envs (normalisation) reduce on it.
    env_step = jax.vmap(env.step, axis_name=ENV_AXIS)
    env_state, next_obs, reward, terminated, truncated, info = env_step(
        step_keys[1:], env_state, env_action(env.action_space, action, network.squash))
    transition = Transition(
        obs=obs,
        action=action,
        log_prob=log_prob,
        reward=reward,
        terminated=terminated,
        done=jnp.logical_or(terminated, truncated),
        next_obs=info["final_observation"],
        episode_return=info["episode_return"],
        episode_length=info["episode_length"],
        episode_info={name: info[name] for name in getattr(env, "episode_info", ())},
    )
    return env_state, next_obs, transition


def rollout(env, network, actor_params, env_state, obs, key, num_steps):
    """Run ``num_steps`` vectorised steps of the stochastic policy from ``(env_state, obs)``.

    The final ``(env_state, obs)`` is returned so the next rollout continues the same episodes
    (no reset between rollouts). ``key``: typed or legacy (:func:`pgjax.keys.typed_key`), or
    the rollout's keys (:func:`rollout_keys`).

    Returns:
      ``(env_state, obs, transitions)`` with ``transitions`` time-major ``[num_steps, num_envs]``.
    """
    num_envs = obs.shape[0]

    def step(carry, inputs):
        env_state, obs = carry
        step_keys, noise = inputs
        policy = network.policy(actor_params, obs)
        env_state, next_obs, transition = act(env, network, policy, env_state, obs, step_keys,
                                              noise)
        return (env_state, next_obs), transition

    keys = rollout_keys(key, num_steps, num_envs)
    noise = sampling_noise(jax.eval_shape(network.policy, actor_params, obs), keys[:, 0])
    (env_state, obs), transitions = jax.lax.scan(step, (env_state, obs), (keys, noise))
    return env_state, obs, transitions


def recurrent_rollout(env, network, actor_params, env_state, obs, memory, key, num_steps):
    """:func:`rollout` for a recurrent policy (:class:`pgjax.recurrent.RecurrentActorCritic`):
    the actor's cell state ``memory`` (``[num_envs, memory_size]``, the state before ``obs``)
    is carried across steps and zeroed after a step that ended an episode, so it is zero at
    every episode's first observation. Same keys as :func:`rollout`.

    Returns:
      ``(env_state, obs, memory, transitions)``: ``memory`` is the state before the returned
      ``obs`` (for the next rollout).
    """
    num_envs = obs.shape[0]
    no_reset = jnp.zeros((num_envs,), bool)

    def step(carry, inputs):
        env_state, obs, h = carry
        step_keys, noise = inputs
        policy, h = network.policy_step(actor_params, h, obs, no_reset)
        env_state, next_obs, transition = act(env, network, policy, env_state, obs, step_keys,
                                              noise)
        h = reset_state(h, transition.done)
        return (env_state, next_obs, h), transition

    keys = rollout_keys(key, num_steps, num_envs)
    policy = jax.eval_shape(network.policy_step, actor_params, memory, obs, no_reset)[0]
    noise = sampling_noise(policy, keys[:, 0])
    (env_state, obs, memory), transitions = jax.lax.scan(step, (env_state, obs, memory),
                                                         (keys, noise))
    return env_state, obs, memory, transitions
