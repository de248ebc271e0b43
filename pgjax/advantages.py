"""Truncation-correct generalised advantage estimation and advantage normalisation."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def gae(rewards, values, next_values, terminated, done, *, gamma, lambda_):
    """Generalised advantage estimation (Schulman et al. 2016, arXiv 1506.02438), time-major.

    With ``next_values_t`` the value of the *true* next observation (the final observation of
    the episode when step t ended it, not the first observation of the next episode)::

        δ_t = r_t + γ (1 − terminated_t) V(s'_t) − V(s_t)
        A_t = δ_t + γ λ (1 − done_t) A_{t+1},      A_T = 0
        returns_t = A_t + V(s_t)

    so a time limit (``truncated``, part of ``done``) bootstraps from V(s'_t) and cuts the trace,
    while a true terminal state does neither. A step both terminated and truncated is terminal.

    Args:
      rewards, values, next_values: ``[T, ...]`` float arrays.
      terminated: ``[T, ...]``, true where s'_t is terminal (no bootstrap).
      done: ``[T, ...]``, ``terminated or truncated`` (the episode ended at t).
      gamma: discount γ. lambda_: GAE λ.

    Returns:
      ``(advantages, returns)``, both ``[T, ...]``. The five inputs must have one shape
      (checked with chex when traced).

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import gae
      >>> r, v, nv = jnp.ones(3), jnp.zeros(3), jnp.zeros(3)
      >>> f = jnp.zeros(3, bool)
      >>> adv, ret = gae(r, v, nv, f, f, gamma=0.5, lambda_=1.0)
      >>> adv.tolist()
      [1.75, 1.5, 1.0]
    """
    chex.assert_rank(values, {1, 2, 3})
    chex.assert_equal_shape([rewards, values, next_values, terminated, done])
    not_terminated = 1.0 - jnp.asarray(terminated, values.dtype)
    not_done = 1.0 - jnp.asarray(done, values.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values

    def backward(next_advantage, step):
        delta, continues = step
        advantage = delta + gamma * lambda_ * continues * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(values[0]), (deltas, not_done), reverse=True
    )
    return advantages, advantages + values


def normalize(advantages, eps: float = 1e-8):
    """(A − mean A) / (std A + eps); returned unchanged when there is a single element, whose
    standard deviation is undefined (SB3#440)."""
    if advantages.size < 2:
        return advantages
    return (advantages - advantages.mean()) / (advantages.std() + eps)
