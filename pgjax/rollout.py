"""Collect a time-major batch of transitions with ``lax.scan`` over (policy sample, env step)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.distributions import Categorical, DiagGaussian, TanhGaussian
from pgjax.envs import ENV_AXIS, Box
from pgjax.keys import gumbel, normal, split_key, typed_key
from pgjax.packing import packing_within, scan_packed
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


#: The largest env state (bytes per env) the rollout carries packed (:func:`state_carry`):
#: classic control's (28 bytes for CartPole) gain, Brax's physics state was 16% slower packed.
PACKED_STATE_BYTES = 128
#: The largest step output (bytes per env: a transition) the rollout stacks packed
#: (:func:`pgjax.packing.scan_packed`; one buffer write per dtype and step instead of nine):
#: CartPole's is 54 bytes, brax/hopper's 118, Breakout-MinAtar's 3.2 kB.
PACKED_OUTPUT_BYTES = 256


def state_carry(env_state):
    """``(pack, unpack)`` of the rollout's carried env state (``[num_envs, ...]`` leaves):
    :func:`pgjax.packing.dtype_packing` for states of at most :data:`PACKED_STATE_BYTES` per
    env, else the identity. XLA:CPU otherwise computes a step's new state as one kernel per
    leaf (each recomputing the env's step) and copies every carried leaf at every step;
    packed, it is one kernel and one copy per dtype. Same numbers; a rollout of 4 CartPole envs
    took 20% less time per step (benchmarks/README.md)."""
    return packing_within(env_state, PACKED_STATE_BYTES, lead_ndim=1)


def rollout_keys(key, num_steps: int, num_envs: int):
    """Every key of a rollout in one split, ``[num_steps, 1 + num_envs]`` (the policy's, then
    one per env, for each step): one RNG call instead of two per step, which is quicker to
    compile and to run on CPU. ``key``: typed or legacy (:func:`pgjax.keys.typed_key`), or
    keys of that shape already (the trainer splits them with the update's other keys, in one
    call), returned as they are."""
    if typed_key(key).shape == (num_steps, num_envs + 1):
        return typed_key(key)
    return split_key(key, num_steps * (num_envs + 1)).reshape(
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
        shape, dtype, draw = policy.logits.shape, policy.logits.dtype, gumbel
    elif isinstance(policy, (DiagGaussian, TanhGaussian)):
        shape, dtype, draw = policy.mean.shape, policy.mean.dtype, normal
    else:
        return None
    return jax.vmap(lambda key: draw(key, shape, dtype))(keys)


def sample_with_noise(policy, noise):
    """``policy.sample(key)`` from the noise :func:`sampling_noise` drew from ``key``."""
    if isinstance(policy, Categorical):
        return jnp.argmax(noise + policy.logits, axis=-1)
    return policy.mean + jnp.exp(policy.log_std) * noise


def env_step_inputs(env, keys):
    """What the rollout hands ``env.step`` in place of each env's key (``keys``: ``[num_steps,
    num_envs]``): the keys, or, for an env with ``prepare_step`` (:mod:`pgjax.envs.core`; a
    gymnax env's auto-reset), what it makes of every key, computed for the whole rollout in one
    batch before the rollout's scan."""
    prepare = getattr(env, "prepare_step", None)
    return keys if prepare is None else jax.vmap(jax.vmap(prepare))(keys)


def act(env, network, policy, env_state, obs, policy_key, env_inputs, noise=None):
    """One vectorised step: sample from ``policy`` (with ``noise`` from
    :func:`sampling_noise` if given, else from ``policy_key``), step every env with its key or
    prepared inputs ``env_inputs`` (:func:`env_step_inputs`); ``(env_state, next_obs,
    Transition)``."""
    action = (policy.sample(policy_key) if noise is None
              else sample_with_noise(policy, noise))
    log_prob = policy.log_prob(action)
    # Named axis: wrappers with statistics shared across envs (normalisation) reduce on it.
    env_step = jax.vmap(env.step, axis_name=ENV_AXIS)
    env_state, next_obs, reward, terminated, truncated, info = env_step(
        env_inputs, env_state, env_action(env.action_space, action, network.squash))
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
    pack, unpack = state_carry(env_state)

    def step(carry, inputs):
        packed_state, obs = carry
        policy_key, env_inputs, noise = inputs
        policy = network.policy(actor_params, obs)
        env_state, next_obs, transition = act(env, network, policy, unpack(packed_state), obs,
                                              policy_key, env_inputs, noise)
        return (pack(env_state), next_obs), transition

    keys = rollout_keys(key, num_steps, num_envs)
    noise = sampling_noise(jax.eval_shape(network.policy, actor_params, obs), keys[:, 0])
    inputs = (keys[:, 0], env_step_inputs(env, keys[:, 1:]), noise)
    (packed_state, obs), transitions = scan_packed(
        step, (pack(env_state), obs), inputs, max_bytes=PACKED_OUTPUT_BYTES, lead_ndim=1)
    return unpack(packed_state), obs, transitions


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
    pack, unpack = state_carry(env_state)

    def step(carry, inputs):
        packed_state, obs, h = carry
        policy_key, env_inputs, noise = inputs
        policy, h = network.policy_step(actor_params, h, obs, no_reset)
        env_state, next_obs, transition = act(env, network, policy, unpack(packed_state), obs,
                                              policy_key, env_inputs, noise)
        h = reset_state(h, transition.done)
        return (pack(env_state), next_obs, h), transition

    keys = rollout_keys(key, num_steps, num_envs)
    policy = jax.eval_shape(network.policy_step, actor_params, memory, obs, no_reset)[0]
    noise = sampling_noise(policy, keys[:, 0])
    inputs = (keys[:, 0], env_step_inputs(env, keys[:, 1:]), noise)
    (packed_state, obs, memory), transitions = scan_packed(
        step, (pack(env_state), obs, memory), inputs, max_bytes=PACKED_OUTPUT_BYTES, lead_ndim=1)
    return unpack(packed_state), obs, memory, transitions
