"""Separate actor and critic MLPs with the standard PPO initialisation, as pure functions.

Hidden layers: tanh, orthogonal init with gain √2, zero biases; policy head gain 0.01; value head
gain 1.0 (Huang et al. 2022, "The 37 Implementation Details of PPO", details 2 and 13); the
Gaussian policy has a state-independent log-std initialised to 0. Parameters are plain pytrees
(lists of ``{"w", "b"}`` dicts). Observations are flattened over their trailing ``obs_ndim`` axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.distributions import Categorical, DiagGaussian
from pgjax.envs import Box, Discrete


def mlp_init(key, sizes: Sequence[int], out_scale: float) -> list[dict]:
    """Parameters of an MLP with layer widths ``sizes`` (input first, output last)."""
    keys = jax.random.split(key, len(sizes) - 1)
    gains = [math.sqrt(2.0)] * (len(sizes) - 2) + [out_scale]
    return [
        {"w": jax.nn.initializers.orthogonal(g)(k, (n_in, n_out)),
         "b": jnp.zeros((n_out,), jnp.float32)}
        for k, n_in, n_out, g in zip(keys, sizes[:-1], sizes[1:], gains)
    ]


def mlp_apply(layers: list[dict], x):
    """tanh hidden layers, linear output."""
    for layer in layers[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


@struct.dataclass
class ActorCriticParams:
    actor: Any  #: {"mlp": layers} (+ "log_std" for Gaussian policies)
    critic: Any  #: {"mlp": layers}


@struct.dataclass
class ActorCritic:
    """Pure functions of a separate actor and critic; the architecture is static."""

    obs_size: int = struct.field(pytree_node=False)
    obs_ndim: int = struct.field(pytree_node=False)
    action_size: int = struct.field(pytree_node=False)  #: categories, or action dimensions
    discrete: bool = struct.field(pytree_node=False)
    actor_hidden: tuple = struct.field(pytree_node=False)
    critic_hidden: tuple = struct.field(pytree_node=False)

    def _flat(self, obs):
        return obs.reshape(obs.shape[: obs.ndim - self.obs_ndim] + (-1,))

    def init(self, key: jax.Array) -> ActorCriticParams:
        key_actor, key_critic = jax.random.split(key)
        actor = {"mlp": mlp_init(key_actor, (self.obs_size, *self.actor_hidden,
                                             self.action_size), 0.01)}
        if not self.discrete:
            actor["log_std"] = jnp.zeros((self.action_size,), jnp.float32)
        critic = {"mlp": mlp_init(key_critic, (self.obs_size, *self.critic_hidden, 1), 1.0)}
        return ActorCriticParams(actor, critic)

    def policy(self, actor_params, obs) -> Categorical | DiagGaussian:
        out = mlp_apply(actor_params["mlp"], self._flat(obs))
        return Categorical(out) if self.discrete else DiagGaussian(out, actor_params["log_std"])

    def value(self, critic_params, obs) -> jax.Array:
        return mlp_apply(critic_params["mlp"], self._flat(obs))[..., 0]


def make_actor_critic(observation_space: Box, action_space, actor_hidden, critic_hidden):
    if isinstance(action_space, Discrete):
        action_size, discrete = action_space.n, True
    elif isinstance(action_space, Box):
        action_size, discrete = math.prod(action_space.shape), False
    else:
        raise TypeError(f"unsupported action space {action_space!r}")
    return ActorCritic(math.prod(observation_space.shape), len(observation_space.shape),
                       action_size, discrete, tuple(actor_hidden), tuple(critic_hidden))
