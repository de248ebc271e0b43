"""Adapter from gymnax 1.x environments to the pgjax protocol.

gymnax 1.x ``step(key, state, action, params)`` returns ``(obs, state, reward, terminated,
truncated, info)``, resets on either flag, and keeps the pre-reset observation in
``info["final_observation"]``. The adapter closes over the env params, reorders the outputs to
``(state, obs, …)``, casts observations and rewards to float32 and passes
``final_observation`` through, so the trainer bootstraps time-limited episodes from the true
final observation.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from pgjax.envs.core import Box, Discrete


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
        info = {"final_observation": info["final_observation"].astype(jnp.float32)}
        return (
            state,
            obs.astype(jnp.float32),
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(terminated, jnp.bool_),
            jnp.asarray(truncated, jnp.bool_),
            info,
        )

    def __repr__(self):
        return f"GymnaxEnv({self.name})"


def make_gymnax(env_id: str, **kwargs) -> GymnaxEnv:
    import gymnax

    env, params = gymnax.make(env_id)
    if kwargs:
        _check_params(env_id, params, kwargs)
        params = params.replace(**kwargs)
    return GymnaxEnv(env, params, f"gymnax/{env_id}")


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
