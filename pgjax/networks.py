"""Separate actor and critic MLPs with the standard PPO initialisation.

Hidden layers: tanh, orthogonal init with gain √2, zero biases; policy head gain 0.01; value head
gain 1.0 (Huang et al. 2022, "The 37 Implementation Details of PPO", details 2 and 13).
Observations are flattened over their trailing ``obs_ndim`` axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from pgjax.distributions import Categorical, DiagGaussian
from pgjax.envs import Box, Discrete


class MLP(nn.Module):
    hidden_sizes: Sequence[int]
    out_size: int
    out_scale: float

    @nn.compact
    def __call__(self, x):
        for size in self.hidden_sizes:
            x = nn.Dense(size, kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)))(x)
            x = jnp.tanh(x)
        return nn.Dense(self.out_size, kernel_init=nn.initializers.orthogonal(self.out_scale))(x)


class GaussianHead(nn.Module):
    """Mean from an MLP, state-independent log-std initialised to 0."""

    hidden_sizes: Sequence[int]
    action_dim: int

    @nn.compact
    def __call__(self, x):
        mean = MLP(self.hidden_sizes, self.action_dim, 0.01)(x)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return mean, log_std


@struct.dataclass
class ActorCriticParams:
    actor: Any
    critic: Any


@struct.dataclass
class ActorCritic:
    """Pure functions of an actor and a critic network (the modules are static)."""

    actor_module: nn.Module = struct.field(pytree_node=False)
    critic_module: nn.Module = struct.field(pytree_node=False)
    discrete: bool = struct.field(pytree_node=False)
    obs_ndim: int = struct.field(pytree_node=False)

    def _flat(self, obs):
        return obs.reshape(obs.shape[: obs.ndim - self.obs_ndim] + (-1,))

    def init(self, key: jax.Array, obs: jax.Array) -> ActorCriticParams:
        key_actor, key_critic = jax.random.split(key)
        x = self._flat(obs)
        return ActorCriticParams(
            actor=self.actor_module.init(key_actor, x),
            critic=self.critic_module.init(key_critic, x),
        )

    def policy(self, actor_params, obs) -> Categorical | DiagGaussian:
        out = self.actor_module.apply(actor_params, self._flat(obs))
        return Categorical(out) if self.discrete else DiagGaussian(*out)

    def value(self, critic_params, obs) -> jax.Array:
        return self.critic_module.apply(critic_params, self._flat(obs))[..., 0]


def make_actor_critic(observation_space: Box, action_space, actor_hidden, critic_hidden):
    if isinstance(action_space, Discrete):
        actor = MLP(tuple(actor_hidden), action_space.n, 0.01)
    elif isinstance(action_space, Box):
        actor = GaussianHead(tuple(actor_hidden), math.prod(action_space.shape))
    else:
        raise TypeError(f"unsupported action space {action_space!r}")
    critic = MLP(tuple(critic_hidden), 1, 1.0)
    return ActorCritic(actor, critic, isinstance(action_space, Discrete),
                       len(observation_space.shape))
