"""Policy, value and entropy losses. Each returns ``(loss, metrics)`` so that
``jax.value_and_grad(loss_fn, has_aux=True)`` works; ``where`` masks samples out of the means.

A first-order Mirror-Learning algorithm (Kuba et al. 2022, arXiv 2201.02373) minimises::

    policy_loss + c_v·value_loss + c_H·entropy_loss
    = −mean(r·Â − D(r, Â)) + c_v·½·mean((V − R)²) − c_H·mean H(π)

with the drift D one of :mod:`pgjax.drifts` or the user's own.
"""

from __future__ import annotations

from collections.abc import Callable

import chex
import jax.numpy as jnp


def masked_mean(x, where=None, axis=None):
    """Mean of ``x`` over the samples where ``where`` is true (all when ``where`` is None),
    over ``axis`` (all axes by default)::

        masked_mean(x, w) = Σ_i w_i·x_i / max(Σ_i w_i, 1)

    a fixed-shape reduction (no boolean indexing), so it compiles once for any mask.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import losses
      >>> float(losses.masked_mean(jnp.array([1.0, 2.0, 9.0]), jnp.array([True, True, False])))
      1.5
    """
    if where is None:
        return jnp.mean(x, axis=axis)
    where = jnp.broadcast_to(where, x.shape)
    return jnp.sum(jnp.where(where, x, 0.0), axis=axis) / jnp.maximum(jnp.sum(where, axis=axis), 1)


def drift_objective(ratio, advantage, drift: Callable, **drift_kwargs):
    """Per-sample Mirror-Learning objective ``r·Â − D(r, Â)`` (Kuba et al. 2022,
    arXiv 2201.02373), to be maximised.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts, losses
      >>> r, a = jnp.array([1.5]), jnp.array([2.0])
      >>> losses.drift_objective(r, a, drifts.ppo, epsilon=0.2).tolist()  # min(3.0, 1.2·2)
      [2.4000000953674316]
    """
    return ratio * advantage - drift(ratio, advantage, **drift_kwargs)


def policy_loss(log_prob, old_log_prob, advantage, drift: Callable, *, drift_kwargs=None,
                kl=None, clip_epsilon=0.2, where=None, pass_log_ratio=False):
    """The Mirror-Learning policy loss (Kuba et al. 2022, arXiv 2201.02373)::

        L = −mean(r·Â − D(r, Â)),      r = exp(log π − log π_old)

    Args:
      log_prob: ``log π(a|s)`` under the policy being optimised.
      old_log_prob: ``log π_old(a|s)`` of the policy that collected the data.
      advantage: ``Â`` per sample, data (normalise it first if wanted).
      drift: ``drift(ratio, advantage, **drift_kwargs)``, e.g. :func:`pgjax.drifts.spo`.
      kl: optional per-sample analytic ``KL(π ‖ π_old)``, reported as ``kl_new_old``.
      clip_epsilon: the ε of the ``clipfrac`` metric.
      where: optional mask; samples where it is false are left out of every mean.
      pass_log_ratio: call ``drift(r, Â, log_ratio=log π − log π_old, **drift_kwargs)``, for
        drifts of ``log r`` (:func:`pgjax.drifts.dpo`, :func:`pgjax.drifts.lpo`), which then
        need not rebuild it as ``log(exp(·))`` (−inf below ≈ −103 in float32).

    Returns:
      ``(loss, metrics)``. Metrics: ``policy_loss``; ``drift`` (mean D); ``approx_kl``, the k3
      estimator ``mean((r − 1) − log r)`` of KL(π_old‖π) (Schulman 2020, "Approximating KL
      divergence"); ``clipfrac``, the fraction with ``|r − 1| > clip_epsilon``;
      ``ratio_deviation``, mean ``|r − 1|`` (Xie et al. 2025, arXiv 2401.16025); and
      ``kl_new_old`` (mean ``kl``) when ``kl`` is given.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts, losses
      >>> lp = jnp.zeros(4)
      >>> loss, m = losses.policy_loss(lp, lp, jnp.ones(4), drifts.ppo)
      >>> float(loss), float(m["approx_kl"])
      (-1.0, 0.0)
      >>> loss, m = losses.policy_loss(jnp.log(jnp.array([1.5, 1.0])), lp[:2], jnp.ones(2),
      ...                              drifts.spo, where=jnp.array([True, False]))
      >>> round(float(loss), 4), round(float(m["drift"]), 4)  # −(1.5 − 0.5²/0.4)
      (-0.875, 0.625)
    """
    loss, log_ratio, drift_value = policy_objective(
        log_prob, old_log_prob, advantage, drift, drift_kwargs=drift_kwargs, where=where,
        pass_log_ratio=pass_log_ratio)
    metrics = {"policy_loss": loss,
               **ratio_metrics(log_ratio, drift_value, clip_epsilon=clip_epsilon, where=where)}
    if kl is not None:
        metrics["kl_new_old"] = masked_mean(kl, where)
    return loss, metrics


def policy_objective(log_prob, old_log_prob, advantage, drift: Callable, *, drift_kwargs=None,
                     where=None, pass_log_ratio=False):
    """``(L, log r, D)``: the loss of :func:`policy_loss` with the per-sample log-ratio and drift
    it was computed from, for callers that reduce the diagnostics later
    (:func:`ratio_metrics`). With ``pass_log_ratio`` the drift also gets
    ``log_ratio=log π − log π_old`` (as :func:`policy_loss`). ``log_prob``, ``old_log_prob``
    and ``advantage`` must have one shape (checked with chex when traced: a ``[B, 1]``
    advantage against ``[B]`` log-probabilities would otherwise broadcast to ``[B, B]``).

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts, losses
      >>> loss, log_r, d = losses.policy_objective(jnp.log(jnp.array([1.5])), jnp.zeros(1),
      ...                                          jnp.array([2.0]), drifts.ppo)
      >>> round(float(loss), 4), round(float(d[0]), 4)  # −min(3.0, 2.4); D = 3.0 − 2.4
      (-2.4, 0.6)
    """
    chex.assert_equal_shape([log_prob, old_log_prob, advantage])
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    drift_kwargs = dict(drift_kwargs or {})
    if pass_log_ratio:
        drift_kwargs["log_ratio"] = log_ratio
    drift_value = drift(ratio, advantage, **drift_kwargs)
    return -masked_mean(ratio * advantage - drift_value, where), log_ratio, drift_value


def ratio_metrics(log_ratio, drift_value, *, clip_epsilon=0.2, where=None):
    """The diagnostics of :func:`policy_loss` from per-sample ``log r`` and ``D`` (any shape):
    ``drift``, ``approx_kl`` (k3), ``clipfrac`` and ``ratio_deviation``.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import losses
      >>> m = losses.ratio_metrics(jnp.log(jnp.array([[1.5, 1.0]])), jnp.zeros((1, 2)))
      >>> round(float(m["clipfrac"]), 2), round(float(m["ratio_deviation"]), 2)
      (0.5, 0.25)
    """
    ratio = jnp.exp(log_ratio)
    deviation = jnp.abs(ratio - 1.0)
    names = ("drift", "approx_kl", "clipfrac", "ratio_deviation")
    # The four means as one reduction over a stacked array: one kernel instead of four.
    per_sample = jnp.stack([jnp.broadcast_to(drift_value, log_ratio.shape),
                            (ratio - 1.0) - log_ratio,
                            (deviation > clip_epsilon).astype(jnp.float32), deviation])
    means = masked_mean(per_sample, where, axis=tuple(range(1, per_sample.ndim)))
    return dict(zip(names, means))


def value_loss(values, old_values, returns, *, clip_epsilon=None, where=None):
    """``½·mean(max((V − R)², (V_clip − R)²))`` with
    ``V_clip = V_old + clip(V − V_old, −ε, ε)`` (PPO's clipped value loss, Huang et al. 2022,
    detail 9); with ``clip_epsilon=None``, ``½·mean((V − R)²)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import losses
      >>> loss, _ = losses.value_loss(jnp.array([1.0]), jnp.array([0.0]), jnp.array([2.0]),
      ...                             clip_epsilon=0.2)
      >>> round(float(loss), 4)  # max(1², 1.8²) / 2
      1.62
    """
    chex.assert_equal_shape([values, old_values, returns])
    squared = (values - returns) ** 2
    if clip_epsilon is not None:
        clipped = old_values + jnp.clip(values - old_values, -clip_epsilon, clip_epsilon)
        squared = jnp.maximum(squared, (clipped - returns) ** 2)
    loss = 0.5 * masked_mean(squared, where)
    return loss, {"value_loss": loss}


def entropy_loss(entropy, where=None):
    """The entropy bonus as a loss, ``−mean H(π(·|s))`` (Williams & Peng 1991; Mnih et al.
    2016, arXiv 1602.01783), to be scaled by the entropy coefficient.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import losses
      >>> loss, m = losses.entropy_loss(jnp.log(jnp.array([2.0, 4.0])))
      >>> round(float(loss), 4), round(float(m["entropy"]), 4)  # −(log 2 + log 4)/2
      (-1.0397, 1.0397)
    """
    mean_entropy = masked_mean(entropy, where)
    return -mean_entropy, {"entropy": mean_entropy}


def explained_variance(predictions, targets):
    """1 − Var(targets − predictions) / Var(targets); NaN-free (0 when Var(targets) = 0).

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import losses
      >>> float(losses.explained_variance(jnp.array([1.0, 2.0]), jnp.array([1.0, 3.0])))
      0.75
    """
    var_targets = jnp.var(targets)
    return jnp.where(var_targets > 0, 1.0 - jnp.var(targets - predictions) / var_targets, 0.0)
