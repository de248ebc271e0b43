"""Adapter from gymnax 1.x environments to the pgjax protocol.

gymnax 1.x ``step(key, state, action, params)`` returns ``(obs, state, reward, terminated,
truncated, info)``, resets on either flag, and keeps the pre-reset observation in
``info["final_observation"]``. The adapter closes over the env params, reorders the outputs to
``(state, obs, …)``, casts observations and rewards to float32 and passes
``final_observation`` through, so the trainer bootstraps time-limited episodes from the true
final observation.

gymnax's ``step`` splits its key into the step's and the reset's and computes a reset at every
step, used where the episode ended. The adapter does the same, and offers it ahead
(:meth:`PreparedGymnaxEnv.prepare_step`): the rollout then draws the keys and computes the resets of
all its steps and envs in one batch before its scan, and each step only selects — a rollout
step of 4 CartPole envs took 21% less time (benchmarks/README.md), with the same numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.envs.core import Box, Discrete
from pgjax.keys import split_key


@struct.dataclass
class PreparedStep:
    """What :meth:`GymnaxEnv.prepare_step` makes of a step's key: the step's own key and the
    reset computed from the other half of its split."""

    key: jax.Array
    reset_state: Any
    reset_obs: jax.Array


def _space(space):
    if hasattr(space, "n"):
        return Discrete(int(space.n))
    return Box.make(space.low, space.high, space.shape)


class GymnaxEnv:
    """A gymnax environment with fixed ``params``, following the pgjax protocol."""

    def __init__(self, env, params, name: str):
        self.gymnax_env = env
        self.params = params
        self.name = name
        self.action_space = _space(env.action_space(params))
        obs_shape = env.observation_space(params).shape
        self.observation_space = Box.make(-jnp.inf, jnp.inf, obs_shape)

    def reset(self, key):
        obs, state = self.gymnax_env.reset(key, self.params)
        return state, obs.astype(jnp.float32)

    def step(self, key, state, action):
        obs, state, reward, terminated, truncated, info = self.gymnax_env.step(
            key, state, action, self.params
        )
        return _outputs(state, obs, reward, terminated, truncated, info["final_observation"])

    def __repr__(self):
        return f"GymnaxEnv({self.name})"


class PreparedGymnaxEnv(GymnaxEnv):
    """A gymnax environment whose ``step`` is gymnax's own ``Environment.step`` (every gymnax
    env but DeepSea), with that step's key work offered ahead (:meth:`prepare_step`)."""

    def prepare_step(self, key) -> PreparedStep:
        """``key`` split as gymnax's ``step`` splits it, and the reset it draws from the second
        half: ``step(prepare_step(key), ...)`` is ``step(key, ...)``."""
        key_step, key_reset = split_key(key, 2)
        obs, state = self.gymnax_env.reset_env(key_reset, self.params)
        return PreparedStep(key_step, state, obs)

    def step(self, key, state, action):
        """gymnax's ``Environment.step`` (step, then the reset where the episode ended), from a
        key or from what :meth:`prepare_step` made of one."""
        prepared = key if isinstance(key, PreparedStep) else self.prepare_step(key)
        env, params = self.gymnax_env, self.params
        obs, stepped, reward, terminated, _ = env.step_env(prepared.key, state, action, params)
        truncated = env.is_truncated(stepped, params)
        done = jnp.logical_or(terminated, truncated)
        state = jax.tree.map(lambda reset, step: jax.lax.select(done, reset, step),
                             prepared.reset_state, stepped)
        next_obs = jax.lax.select(done, prepared.reset_obs, obs)
        return _outputs(state, next_obs, reward, terminated, truncated, obs)


def _outputs(state, obs, reward, terminated, truncated, final_obs):
    """The protocol's step outputs, in its dtypes."""
    return (
        state,
        obs.astype(jnp.float32),
        jnp.asarray(reward, jnp.float32),
        jnp.asarray(terminated, jnp.bool_),
        jnp.asarray(truncated, jnp.bool_),
        {"final_observation": final_obs.astype(jnp.float32)},
    )


def make_gymnax(env_id: str, **kwargs) -> GymnaxEnv:
    import gymnax
    from gymnax.environments.environment import Environment

    env, params = gymnax.make(env_id)
    if kwargs:
        _check_params(env_id, params, kwargs)
        params = params.replace(**kwargs)
    own_step = type(env).step is Environment.step  # DeepSea has a step of its own
    return (PreparedGymnaxEnv if own_step else GymnaxEnv)(env, params, f"gymnax/{env_id}")


def _check_params(env_id: str, params, kwargs: dict) -> None:
    """One-line errors for env params that ``env_id`` does not have or that are not numbers."""
    import difflib
    import numbers

    names = [f.name for f in dataclasses.fields(params)]
    for name, value in kwargs.items():
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"it has {', '.join(names)}"
            raise ValueError(f"env_kwargs: gymnax/{env_id} has no parameter {name!r}; {hint}")
        if not isinstance(value, numbers.Number) and not hasattr(value, "dtype"):
            raise ValueError(f"env_kwargs: {name}={value!r} is not a number")


def gymnax_ids() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)
