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


def orthogonal(normal, gain: float = 1.0):
    """An orthogonal matrix of ``normal``'s shape from a standard-normal draw: ``gain·Q`` of the
    QR decomposition, signs fixed by ``diag(R)`` (Saxe et al. 2014, arXiv 1312.6120; the same
    law as ``jax.nn.initializers.orthogonal``). Taking the draw as input lets one RNG call feed
    every layer, which keeps the init program small to compile."""
    n_in, n_out = normal.shape
    z = normal.T if n_in < n_out else normal
    q, r = jnp.linalg.qr(z)
    q = q * jnp.sign(jnp.diagonal(r))
    return gain * (q.T if n_in < n_out else q)


def _num_weights(sizes: Sequence[int]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def mlp_from_normal(normal, sizes: Sequence[int], out_scale: float) -> list[dict]:
    """MLP parameters with layer widths ``sizes`` (input first, output last) from a flat
    standard-normal draw of ``Σ n_in·n_out`` numbers: orthogonal weights (gain √2 hidden,
    ``out_scale`` output) and zero biases."""
    layers, start = [], 0
    gains = [math.sqrt(2.0)] * (len(sizes) - 2) + [out_scale]
    for n_in, n_out, gain in zip(sizes[:-1], sizes[1:], gains):
        w = normal[start:start + n_in * n_out].reshape(n_in, n_out)
        layers.append({"w": orthogonal(w, gain), "b": jnp.zeros((n_out,), jnp.float32)})
        start += n_in * n_out
    return layers


def mlp_init(key, sizes: Sequence[int], out_scale: float) -> list[dict]:
    """Parameters of an MLP with layer widths ``sizes`` (see :func:`mlp_from_normal`)."""
    return mlp_from_normal(jax.random.normal(key, (_num_weights(sizes),)), sizes, out_scale)


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
        actor_sizes = (self.obs_size, *self.actor_hidden, self.action_size)
        critic_sizes = (self.obs_size, *self.critic_hidden, 1)
        n_actor = _num_weights(actor_sizes)
        # One normal draw for every layer: each RNG call site costs compile time.
        normal = jax.random.normal(key, (n_actor + _num_weights(critic_sizes),))
        actor = {"mlp": mlp_from_normal(normal[:n_actor], actor_sizes, 0.01)}
        if not self.discrete:
            actor["log_std"] = jnp.zeros((self.action_size,), jnp.float32)
        critic = {"mlp": mlp_from_normal(normal[n_actor:], critic_sizes, 1.0)}
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
