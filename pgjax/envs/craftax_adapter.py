"""Craftax environments (``make("craftax/<Name>")``, the ``craftax`` extra) under the pgjax
protocol.

Craftax's ``step`` is the old gymnax 5-tuple with its own auto-reset, which returns the reset's
observation at an episode end and calls a time limit ``done`` like a death. pgjax steps
Craftax's ``auto_reset=False`` env instead: ``terminated`` for the env's own game over (death,
lava, the beaten boss) — read from its ``is_terminal`` with the time limit lifted —,
``truncated`` when ``params.max_timesteps`` steps have been taken without one, and
:class:`pgjax.envs.AutoReset` hands back the true final observation.

A reset generates a world (64 resets cost ~35 steps of 64 envs on a CPU), so the family resets
from a pool by default: one fresh world per ``reset_ratio`` envs per step, for the whole batch
(:class:`pgjax.envs.AutoReset`; ``reset_ratio=None`` gives every env its own reset at every
step, as other families do). Measured on the 2-core CPU, 64 envs of Craftax-Classic-Symbolic
stepped by a random policy from fresh worlds: 18.8k steps/s without resets, 12.2k with one
fresh world per step (``reset_ratio=64``), 8.5k with four, ~1k with a reset per env; random
episodes end at 0.17 envs per step there, so one world per step rarely has to be shared.

``info["achievements"]``: how many of the env's achievements the episode has unlocked so far
(read where the episode ends: the trainer's ``achievements`` metric averages it over the
episodes that ended in an update).
"""

from __future__ import annotations

import importlib.util

import jax.numpy as jnp

from pgjax.envs.core import AutoReset, Box, Discrete
from pgjax.extras import install_hint

NAMES = ("Craftax-Classic-Symbolic-v1", "Craftax-Classic-Pixels-v1", "Craftax-Symbolic-v1",
         "Craftax-Pixels-v1")
#: envs per fresh world per step (Craftax's own PPO uses 16, for 1024 envs on a GPU)
DEFAULT_RESET_RATIO = 64
INSTALL_HINT = f"Craftax environments need the craftax extra: {install_hint('craftax')}"
NO_TIME_LIMIT = 2 ** 31 - 1


def craftax_ids() -> list[str]:
    """The Craftax names :func:`make_craftax` takes (empty when the extra is not installed)."""
    return list(NAMES) if importlib.util.find_spec("craftax") is not None else []


class CraftaxEnv:
    """A Craftax env without auto-reset, with fixed ``params``, following the pgjax protocol."""

    episode_info = ("achievements",)  #: reported per update (:func:`pgjax.envs.episode_info`)

    def __init__(self, env, params, name: str):
        self.craftax_env = env
        self.params = params
        self.name = name
        self.untimed_params = params.replace(max_timesteps=NO_TIME_LIMIT)
        self.action_space = Discrete(int(env.action_space(params).n))
        space = env.observation_space(params)
        self.observation_space = Box.make(space.low, space.high, space.shape)

    def reset(self, key):
        obs, state = self.craftax_env.reset(key, self.params)
        return state, obs.astype(jnp.float32)

    def step(self, key, state, action):
        obs, state, reward, done, _ = self.craftax_env.step(key, state, action, self.params)
        terminated = jnp.asarray(self.craftax_env.is_terminal(state, self.untimed_params),
                                 jnp.bool_)
        truncated = jnp.logical_and(jnp.asarray(done, jnp.bool_), jnp.logical_not(terminated))
        obs = obs.astype(jnp.float32)
        info = {"final_observation": obs,
                "achievements": jnp.sum(state.achievements).astype(jnp.float32)}
        return state, obs, jnp.asarray(reward, jnp.float32), terminated, truncated, info

    def __repr__(self):
        return f"CraftaxEnv({self.name})"


def make_craftax(name: str, reset_ratio: int | None = DEFAULT_RESET_RATIO,
                 **params) -> AutoReset:
    """``craftax/<name>`` with pgjax's auto-reset (module docstring); ``params`` override
    fields of the env's ``EnvParams`` (e.g. ``max_timesteps``)."""
    if importlib.util.find_spec("craftax") is None:
        raise ImportError(INSTALL_HINT)
    if name not in NAMES:
        raise ValueError(f"env: unknown Craftax environment {name!r} (known: {', '.join(NAMES)})")
    from craftax.craftax_env import make_craftax_env_from_name

    env = make_craftax_env_from_name(name, auto_reset=False)
    env_params = env.default_params
    unknown = sorted(set(params) - set(env_params.__dataclass_fields__))
    if unknown:
        raise ValueError(f"env_kwargs: craftax/{name} has no parameter {unknown[0]!r}; it has "
                         f"{', '.join(env_params.__dataclass_fields__)}")
    return AutoReset(CraftaxEnv(env, env_params.replace(**params), f"craftax/{name}"),
                     reset_ratio=reset_ratio)
