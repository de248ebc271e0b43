"""Collect a time-major batch of transitions with ``lax.scan`` over (policy sample, env step)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.distributions import Categorical, DiagGaussian, TanhGaussian
from pgjax.envs import ENV_AXIS, Box
from pgjax.keys import gumbel, normal, split_key, typed_key
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


def dtype_packing(template, lead_ndim: int = 1):
    """``(pack, unpack)`` for pytrees shaped like ``template``: ``pack`` concatenates the leaves
    of each dtype, each flattened after its ``lead_ndim`` leading axes, into one array
    (``{dtype name: [*lead, width]}``, PRNG keys left as they are); ``unpack`` slices them
    back into the same pytree, exactly.

    The rollout carries the env state packed: XLA:CPU otherwise computes a step's new state
    as one kernel per leaf (each recomputing the env's step) and copies every carried leaf at
    every step; packed, it is one kernel and one copy per dtype. Same numbers; a rollout of 4
    CartPole envs took 20% less time per step (benchmarks/README.md). Large states are
    carried as they are (:func:`state_carry`)."""
    leaves, treedef = jax.tree.flatten(template)
    shapes = [leaf.shape[lead_ndim:] for leaf in leaves]
    groups: dict[str, list[int]] = {}
    for i, leaf in enumerate(leaves):
        if not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            groups.setdefault(jnp.dtype(leaf.dtype).name, []).append(i)
    packed_leaves = {i for members in groups.values() for i in members}

    def pack(tree):
        leaves = jax.tree.leaves(tree)
        lead = leaves[0].shape[:lead_ndim] if leaves else ()
        packed = {name: jnp.concatenate([leaves[i].reshape(lead + (-1,)) for i in members],
                                        axis=-1) for name, members in groups.items()}
        return packed, [leaf for i, leaf in enumerate(leaves) if i not in packed_leaves]

    def unpack(packed_tree):
        packed, others = packed_tree
        leaves = [None] * len(shapes)
        for name, members in groups.items():
            start = 0
            for i in members:
                width = math.prod(shapes[i])
                column = packed[name][..., start:start + width]
                leaves[i] = column.reshape(column.shape[:-1] + shapes[i])
                start += width
        others = iter(others)
        return jax.tree.unflatten(treedef, [next(others) if leaf is None else leaf
                                            for leaf in leaves])

    return pack, unpack


#: The largest env state (bytes per env) the rollout carries packed (:func:`dtype_packing`):
#: classic control's (28 bytes for CartPole) gain, Brax's physics state was 16% slower packed.
PACKED_STATE_BYTES = 128
#: The largest step output (bytes per env: a transition) the rollout stacks packed
#: (:func:`scan_packed`): CartPole's is 54 bytes, brax/hopper's 118, Breakout-MinAtar's 3.2 kB.
PACKED_OUTPUT_BYTES = 256


def packing_within(tree, max_bytes: int):
    """:func:`dtype_packing` of ``tree`` (leaves ``[num_envs, ...]``) when its leaves other
    than PRNG keys hold at most ``max_bytes`` per env, else ``(pack, unpack)`` that return the
    tree as it is."""
    leaves = jax.tree.leaves(tree)
    per_env = sum(math.prod(leaf.shape[1:]) * jnp.dtype(leaf.dtype).itemsize for leaf in leaves
                  if not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key))
    if per_env > max_bytes:
        return (lambda tree: tree), (lambda tree: tree)
    return dtype_packing(tree)


def state_carry(env_state):
    """``(pack, unpack)`` of the rollout's carried env state (``[num_envs, ...]`` leaves):
    :func:`dtype_packing` for states of at most :data:`PACKED_STATE_BYTES` per env, else the
    identity."""
    return packing_within(env_state, PACKED_STATE_BYTES)


def scan_packed(step, carry, inputs):
    """``jax.lax.scan(step, carry, inputs)`` whose per-step outputs (leaves ``[num_envs,
    ...]``, a :class:`Transition`) are stacked packed by dtype (:func:`dtype_packing`, when at
    most :data:`PACKED_OUTPUT_BYTES` per env) and unpacked after the scan: the same arrays.

    XLA:CPU writes each stacked output with a kernel of its own at every step (nine for a
    transition); packed, one per dtype: the CartPole PPO program has 7 kernels fewer to
    compile (2–3% of its compile time; run time unchanged, benchmarks/README.md)."""
    unpack = []

    def packed_step(carry, x):
        carry, outputs = step(carry, x)
        pack, unpack_outputs = packing_within(outputs, PACKED_OUTPUT_BYTES)
        unpack[:] = [unpack_outputs]
        return carry, pack(outputs)

    carry, stacked = jax.lax.scan(packed_step, carry, inputs)
    return carry, unpack[0](stacked)


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
    (packed_state, obs), transitions = scan_packed(step, (pack(env_state), obs), inputs)
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
        step, (pack(env_state), obs, memory), inputs)
    return unpack(packed_state), obs, memory, transitions
