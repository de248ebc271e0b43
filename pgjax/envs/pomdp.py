"""Partially observable variants: :class:`MaskObservation` hides observation dimensions, and the
stateless classic-control ids built with it, named as popgym names them (Morad et al., ICLR 2023,
arXiv 2303.01859): ``StatelessCartPole-v1`` is gymnax CartPole-v1 without the velocities,
``StatelessPendulum-v1`` is gymnax Pendulum-v1 without the angular velocity. A feed-forward
policy sees one frame and cannot recover what was hidden; a policy with memory can.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from pgjax.envs.core import Box, Wrapper

__all__ = ["MaskObservation", "POMDP_IDS", "make_pomdp"]


class MaskObservation(Wrapper):
    """Keep only the observation dimensions ``keep`` (indices into a flat observation), in every
    observation the env returns, ``info["final_observation"]`` included. Pure: no state of its
    own."""

    passes_key = True

    def __init__(self, env, keep):
        super().__init__(env)
        shape = env.observation_space.shape
        if len(shape) != 1:
            raise ValueError(f"MaskObservation: needs flat observations, not shape {shape}")
        keep = np.asarray(keep, np.int32).reshape(-1)
        if keep.size == 0 or keep.min() < 0 or keep.max() >= shape[0] or \
                len(set(keep.tolist())) != keep.size:
            raise ValueError(f"MaskObservation: keep {keep.tolist()} must be distinct indices "
                             f"in 0..{shape[0] - 1}")
        self.keep = keep
        space = env.observation_space
        self._space = Box.make(space.low[keep], space.high[keep], (keep.size,))

    @property
    def observation_space(self):
        return self._space

    def reset(self, key):
        state, obs = self.env.reset(key)
        return state, obs[..., self.keep]

    def step(self, key, state, action):
        state, obs, reward, terminated, truncated, info = self.env.step(key, state, action)
        info = {**info, "final_observation": jnp.asarray(info["final_observation"])[..., self.keep]}
        return state, obs[..., self.keep], reward, terminated, truncated, info


#: id → (gymnax id, the observation dimensions kept).
POMDP_IDS = {
    "StatelessCartPole-v1": ("CartPole-v1", (0, 2)),  # x, θ of (x, ẋ, θ, θ̇)
    "StatelessPendulum-v1": ("Pendulum-v1", (0, 1)),  # cos θ, sin θ of (cos θ, sin θ, θ̇)
}


def make_pomdp(name: str, **kwargs) -> MaskObservation:
    """The stateless variant ``name`` of :data:`POMDP_IDS`; ``kwargs`` go to the gymnax env's
    params (e.g. ``max_steps_in_episode``)."""
    from pgjax.envs.gymnax_adapter import make_gymnax

    base, keep = POMDP_IDS[name]
    return MaskObservation(make_gymnax(base, **kwargs), keep)
