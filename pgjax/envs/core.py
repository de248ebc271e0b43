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
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


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


class Wrapper:
    """Forwards spaces and unknown attributes to the wrapped environment."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
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

    The reset draws a fresh initial state from its own key on every episode end.
    """

    def reset(self, key):
        return self.env.reset(key)

    def step(self, key, state, action):
        key_step, key_reset = jax.random.split(key)
        state, obs, reward, terminated, truncated, info = self.env.step(key_step, state, action)
        reset_state, reset_obs = self.env.reset(key_reset)
        done = jnp.logical_or(terminated, truncated)
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
        next_obs = jnp.where(done, reset_obs, obs)
        return state, next_obs, reward, terminated, truncated, {**info, "final_observation": obs}


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
