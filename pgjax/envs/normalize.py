"""Observation and reward normalisation as pure environment wrappers.

Both keep running statistics shared by every env of a batch: step and reset them under
``jax.vmap(..., axis_name="envs")`` (pgjax's rollout does) and each step's batch is merged into
the statistics with the parallel-moments formula of Chan, Golub & LeVeque (1983). Every env
holds an identical copy of the statistics, which live in the env state and so in the train
state. With ``axis_name=None`` each env keeps its own statistics. Evaluation applies trained
statistics through :func:`normalize_observation` (see :mod:`pgjax.policy`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.envs.core import Wrapper

ENV_AXIS = "envs"


@struct.dataclass
class RunningMoments:
    """Mean and (population) variance of everything seen so far, and how much that was."""

    count: jax.Array
    mean: jax.Array
    var: jax.Array

    @classmethod
    def zeros(cls, shape=()) -> "RunningMoments":
        """No data yet: mean 0, variance 1 (so the first normalisation is the identity), and a
        tiny count so the first merge takes the batch's moments."""
        return cls(jnp.float32(1e-4), jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32))

    def merge(self, mean, var, count) -> "RunningMoments":
        """Combine with a batch of ``count`` samples of moments ``(mean, var)``::

            δ = mean_b − mean_a,  n = n_a + n_b
            mean = mean_a + δ·n_b/n
            var  = (n_a·var_a + n_b·var_b + δ²·n_a·n_b/n) / n
        """
        total = self.count + count
        delta = mean - self.mean
        new_mean = self.mean + delta * count / total
        m2 = self.var * self.count + var * count + jnp.square(delta) * self.count * count / total
        return RunningMoments(total, new_mean, m2 / total)

    def update(self, x, axis_name: str | None) -> "RunningMoments":
        """Merge the values ``x`` of every env on ``axis_name`` (this env's alone without)."""
        if axis_name is None:
            return self.merge(x, jnp.zeros_like(x), 1.0)
        mean = jax.lax.pmean(x, axis_name)
        var = jax.lax.pmean(jnp.square(x - mean), axis_name)
        return self.merge(mean, var, jax.lax.psum(1.0, axis_name))


def normalize_observation(moments: RunningMoments, obs, *, clip: float = 10.0,
                          epsilon: float = 1e-8):
    """``clip((o − μ) / √(σ² + ε), ±clip)``."""
    return jnp.clip((obs - moments.mean) / jnp.sqrt(moments.var + epsilon), -clip, clip)


def observation_moments(env_state) -> RunningMoments | None:
    """The observation statistics inside a (wrapped) env state, or None if it has none."""
    while env_state is not None:
        if isinstance(env_state, ObservationNormState):
            return env_state.moments
        env_state = getattr(env_state, "env_state", None)
    return None


@struct.dataclass
class ObservationNormState:
    env_state: Any
    moments: RunningMoments


@struct.dataclass
class RewardNormState:
    env_state: Any
    moments: RunningMoments  #: of the discounted return
    discounted_return: jax.Array


class NormalizeObservation(Wrapper):
    """``clip((o − μ) / √(σ² + ε), ±clip)`` with running μ, σ² of the observations; the final
    observation in ``info`` is normalised with the same statistics."""

    passes_key = True

    def __init__(self, env, *, clip: float = 10.0, epsilon: float = 1e-8,
                 axis_name: str | None = ENV_AXIS):
        super().__init__(env)
        self.clip, self.epsilon, self.axis_name = clip, epsilon, axis_name

    def normalize(self, moments: RunningMoments, obs):
        return normalize_observation(moments, obs, clip=self.clip, epsilon=self.epsilon)

    def reset(self, key):
        env_state, obs = self.env.reset(key)
        moments = RunningMoments.zeros(obs.shape).update(obs, self.axis_name)
        return ObservationNormState(env_state, moments), self.normalize(moments, obs)

    def step(self, key, state, action):
        env_state, obs, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action)
        moments = state.moments.update(obs, self.axis_name)
        info = {**info, "final_observation": self.normalize(moments, info["final_observation"])}
        return (ObservationNormState(env_state, moments), self.normalize(moments, obs), reward,
                terminated, truncated, info)


class NormalizeReward(Wrapper):
    """``clip(r / √(Var[G] + ε), ±clip)`` with ``G ← γ·G + r`` each env's running discounted
    return (reset to 0 when an episode ends) and Var[G] its running variance over all envs and
    steps — the reward scaling of Engstrom et al. 2020 (arXiv 2005.12729, §3) and gym's
    ``NormalizeReward``. Put :class:`pgjax.envs.EpisodeStats` inside this wrapper so reported
    returns stay unscaled."""

    def __init__(self, env, gamma, *, clip: float = 10.0, epsilon: float = 1e-8,
                 axis_name: str | None = ENV_AXIS):
        super().__init__(env)
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.axis_name = axis_name

    passes_key = True

    def reset(self, key):
        env_state, obs = self.env.reset(key)
        return RewardNormState(env_state, RunningMoments.zeros(), jnp.float32(0.0)), obs

    def step(self, key, state, action):
        env_state, obs, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action)
        discounted = self.gamma * state.discounted_return + reward
        moments = state.moments.update(discounted, self.axis_name)
        scaled = jnp.clip(reward / jnp.sqrt(moments.var + self.epsilon), -self.clip, self.clip)
        done = jnp.logical_or(terminated, truncated)
        state = RewardNormState(env_state, moments, jnp.where(done, 0.0, discounted))
        return state, obs, scaled, terminated, truncated, info
