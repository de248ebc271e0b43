"""The one environment protocol pgjax trains on, its action/observation spaces, and pure wrappers.

An environment is any object with

* ``observation_space``: a :class:`Box` (the shape of one observation),
* ``action_space``: a :class:`Discrete` or a :class:`Box`,
* ``reset(key) -> (state, obs)``,
* ``step(key, state, action) -> (state, obs, reward, terminated, truncated, info)``,

where ``step`` resets the episode by itself when ``terminated or truncated`` (wrap an env that
does not in :class:`AutoReset`), and ``info["final_observation"]`` is the observation the step
produced *before* any reset — equal to ``obs`` when the episode goes on. The trainer bootstraps
from it, so time-limited episodes are valued correctly. ``terminated`` means a true terminal state
(no bootstrap), ``truncated`` a time limit (bootstrap from the final observation). Everything is
unbatched: the trainer vmaps over environments.

An environment may also declare ``episode_info``, a tuple of ``info`` keys that describe the
episode at its end (Craftax's ``achievements``): the trainer reports each as a metric, its mean
over the episodes that ended in an update (:func:`episode_info`).

And it may define ``prepare_step(key) -> inputs``: ``step(inputs, state, action)`` must then do
exactly what ``step(key, state, action)`` does. The rollout calls it for every step and env of
a rollout at once, before the rollout's scan, and hands ``step`` the result in place of the
key: work that depends on the key alone (a gymnax env's auto-reset: the key's split and the
reset drawn at every step) runs as one batch instead of inside every step. A wrapper forwards
its env's ``prepare_step`` only if its ``step`` passes the key on untouched
(:attr:`Wrapper.passes_key`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from pgjax.keys import split_key


@dataclasses.dataclass(frozen=True)
class Discrete:
    """``n`` actions, numbered ``0 … n-1``."""

    n: int


@dataclasses.dataclass(frozen=True, eq=False)
class Box:
    """Real arrays of ``shape`` bounded elementwise by ``low`` and ``high`` (may be ±inf)."""

    low: np.ndarray
    high: np.ndarray
    shape: tuple[int, ...]

    @classmethod
    def make(cls, low, high, shape) -> "Box":
        shape = tuple(int(s) for s in shape)
        low = np.broadcast_to(np.asarray(low, np.float32), shape).copy()
        high = np.broadcast_to(np.asarray(high, np.float32), shape).copy()
        return cls(low, high, shape)


@runtime_checkable
class Environment(Protocol):
    """The protocol above, for ``isinstance`` checks on a user's own environment."""

    observation_space: Box
    action_space: Discrete | Box

    def reset(self, key: jax.Array) -> tuple[Any, jax.Array]: ...

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> tuple: ...


def episode_info(env) -> tuple[str, ...]:
    """The ``info`` keys ``env`` reports of each episode at its end (``()`` for most envs);
    wrappers forward the attribute."""
    return tuple(getattr(env, "episode_info", ()))


class Wrapper:
    """Forwards spaces and unknown attributes to the wrapped environment."""

    def __init__(self, env):
        self.env = env

    #: whether ``step`` hands its key to the wrapped env untouched, so that the rollout may
    #: prepare it with the wrapped env's ``prepare_step`` (a wrapper that draws from the key
    #: itself must leave this False)
    passes_key = False

    def __getattr__(self, name):
        if name == "prepare_step" and not self.passes_key:
            raise AttributeError(name)
        return getattr(self.env, name)

    def __repr__(self):
        return f"{type(self).__name__}({self.env!r})"

    @property
    def observation_space(self):
        return self.env.observation_space

    @property
    def action_space(self):
        return self.env.action_space


class AutoReset(Wrapper):
    """Resets an environment whose ``step`` does not, recording ``info["final_observation"]``.

    By default (``reset_ratio=None``) every env draws a fresh initial state from its own key at
    every episode end — which, vmapped, means a reset computed for every env at every step.
    Where a reset is expensive (a Craftax reset generates a world: 64 resets cost as much as
    ~35 steps of 64 envs), ``reset_ratio=R`` computes only ``K = ⌈num_envs / R⌉`` fresh initial
    states per step for the whole batch of envs (:func:`pooled_reset`; Craftax's
    ``OptimisticResetVecEnvWrapper`` and its ``reset_ratio``): the ``j``-th env to finish at
    that step (in env order) starts from pool state ``j mod K``. Each start is still a fresh
    draw from the initial-state distribution, independent of every earlier step's; only when
    more than ``K`` envs finish at the same step do some of them share a start. The pool is
    computed only at a step where some env finished (skipped otherwise, unless the batch is
    itself inside an outer ``vmap``, which evaluates both branches). ``reset_ratio=1`` is
    exactly the default.
    """

    def __init__(self, env, reset_ratio: int | None = None):
        super().__init__(env)
        if reset_ratio is not None and (int(reset_ratio) != reset_ratio or reset_ratio < 1):
            raise ValueError(f"reset_ratio: {reset_ratio} must be a positive integer or None")
        self.reset_ratio = None if reset_ratio is None else int(reset_ratio)
        self._fresh = None if reset_ratio is None else pooled_reset(env.reset, self.reset_ratio)

    def reset(self, key):
        return self.env.reset(key)

    def step(self, key, state, action):
        key_step, key_reset = split_key(key, 2)
        state, obs, reward, terminated, truncated, info = self.env.step(key_step, state, action)
        done = jnp.logical_or(terminated, truncated)
        if self._fresh is None:
            reset_state, reset_obs = self.env.reset(key_reset)
        else:
            reset_state, reset_obs = self._fresh(key_reset, done)
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
        next_obs = jnp.where(done, reset_obs, obs)
        return state, next_obs, reward, terminated, truncated, {**info, "final_observation": obs}


def pooled_reset(reset: Callable, reset_ratio: int) -> Callable:
    """``fresh(key, done) -> (state, obs)``: ``reset(key)`` for one env; vmapped over a batch
    of ``N`` envs (keys and ``done`` flags), only ``K = ⌈N / reset_ratio⌉`` resets are computed
    — from the first ``K`` envs' keys — and the ``j``-th env with ``done`` (in env order) gets
    pool entry ``j mod K`` (a ``jax.custom_batching.custom_vmap`` rule). With ``K = N`` each env
    gets its own key's reset, as unpooled. The rule applies to the innermost ``vmap``, which in
    pgjax's rollout is the one over envs (seeds and grids are outer ``vmap``s)."""

    def placeholder(keys):
        """Values of the pool's shapes where no env takes one (never selected)."""
        shapes = jax.eval_shape(jax.vmap(reset), keys)
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    @jax.custom_batching.custom_vmap
    def fresh(key, done):
        del done
        return reset(key)

    @fresh.def_vmap
    def fresh_batched(axis_size, in_batched, key, done):
        key_batched, done_batched = in_batched
        if not key_batched:
            key = jnp.broadcast_to(key, (axis_size, *key.shape))
        if not done_batched:
            done = jnp.broadcast_to(done, (axis_size,))
        size = -(-axis_size // reset_ratio)
        if size == axis_size:
            out = jax.vmap(reset)(key)
        else:
            # no fresh world is generated at a step where no env finished (a real branch
            # where this batch is not itself vmapped, e.g. one seed per device on a CPU)
            pool = jax.lax.cond(jnp.any(done), jax.vmap(reset), placeholder, key[:size])
            entry = (jnp.cumsum(done.astype(jnp.int32)) - 1) % size
            out = jax.tree.map(lambda x: x[entry], pool)
        return out, jax.tree.map(lambda _: True, out)

    return fresh


@struct.dataclass
class EpisodeStatsState:
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStats(Wrapper):
    """Tracks the undiscounted return and length of the running episode.

    ``info`` gains ``episode_return`` and ``episode_length`` (the totals *including* this step)
    and ``episode_done``; read the totals where ``episode_done`` is true. Rewards are counted
    as the wrapped env returns them, so put this wrapper inside any reward scaling.
    """

    passes_key = True

    def reset(self, key):
        env_state, obs = self.env.reset(key)
        zero = jnp.zeros((), jnp.float32)
        return EpisodeStatsState(env_state, zero, jnp.zeros((), jnp.int32)), obs

    def step(self, key, state, action):
        env_state, obs, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action
        )
        done = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        info = {
            **info,
            "episode_return": episode_return,
            "episode_length": episode_length,
            "episode_done": done,
        }
        state = EpisodeStatsState(
            env_state,
            jnp.where(done, 0.0, episode_return),
            jnp.where(done, 0, episode_length),
        )
        return state, obs, reward, terminated, truncated, info
