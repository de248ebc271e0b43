"""Action distributions as pytrees, each with ``sample``, ``log_prob``, ``entropy``, ``kl`` and
``mode``. Batched over leading dimensions; the event is the last axis of the parameters."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@struct.dataclass
class Categorical:
    """π(a) = softmax(logits)_a over the last axis."""

    logits: jax.Array

    @property
    def log_probs(self) -> jax.Array:
        return jax.nn.log_softmax(self.logits, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits, axis=-1)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        return jnp.take_along_axis(self.log_probs, action[..., None].astype(jnp.int32), -1)[..., 0]

    def entropy(self) -> jax.Array:
        """H = −Σ_a π(a) log π(a)."""
        log_p = self.log_probs
        return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)

    def kl(self, other: "Categorical") -> jax.Array:
        """KL(self ‖ other) = Σ_a π(a) (log π(a) − log π'(a))."""
        log_p = self.log_probs
        return jnp.sum(jnp.exp(log_p) * (log_p - other.log_probs), axis=-1)


@struct.dataclass
class DiagGaussian:
    """Independent normals N(mean, exp(log_std)²); log-probs sum over the last axis."""

    mean: jax.Array
    log_std: jax.Array  # broadcastable to mean (state-independent: shape [action_dim])

    def sample(self, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * noise

    def mode(self) -> jax.Array:
        return self.mean

    def log_prob(self, action: jax.Array) -> jax.Array:
        """log π(a) = Σ_i [−½((a_i − μ_i)/σ_i)² − log σ_i − ½ log 2π]."""
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z**2 - self.log_std - _HALF_LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        """H = Σ_i [log σ_i + ½ log(2πe)]."""
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        return jnp.sum(log_std + _HALF_LOG_2PI + 0.5, axis=-1)

    def kl(self, other: "DiagGaussian") -> jax.Array:
        """KL(p ‖ q) = Σ_i [log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½]."""
        var_ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        mean_term = ((self.mean - other.mean) * jnp.exp(-other.log_std)) ** 2
        return jnp.sum(0.5 * (var_ratio + mean_term - 1.0) - (self.log_std - other.log_std), -1)
