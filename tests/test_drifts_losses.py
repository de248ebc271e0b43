"""The loss library: policy loss given a drift, value loss, entropy bonus."""

import jax
import jax.numpy as jnp
import numpy as np

from pgjax import drifts, losses


def test_policy_loss_at_ratio_one():
    lp = jnp.log(jnp.array([0.2, 0.5, 0.9, 0.3]))
    adv = jnp.array([1.0, -1.0, 2.0, 0.5])
    loss, m = losses.policy_loss(lp, lp, adv, drifts.ppo)
    np.testing.assert_allclose(loss, -adv.mean(), rtol=1e-6)
    for key in ("approx_kl", "clipfrac", "ratio_deviation", "drift"):
        np.testing.assert_allclose(m[key], 0.0, atol=1e-7)


def test_policy_loss_zero_gradient_when_clipped():
    old = jnp.zeros(1)
    grad = jax.grad(lambda lp: losses.policy_loss(lp, old, jnp.ones(1), drifts.ppo)[0])
    assert float(grad(jnp.log(jnp.array([1.5])))[0]) == 0.0  # r > 1 + ε, Â > 0
    assert float(grad(jnp.log(jnp.array([1.1])))[0]) < 0.0


def test_value_loss_is_max_of_clipped_and_unclipped():
    v, v_old, ret = jnp.array([1.0, 0.1]), jnp.array([0.0, 0.0]), jnp.array([2.0, -1.0])
    loss, _ = losses.value_loss(v, v_old, ret, clip_epsilon=0.2)
    clipped = v_old + jnp.clip(v - v_old, -0.2, 0.2)
    ref = 0.5 * jnp.mean(jnp.maximum((v - ret) ** 2, (clipped - ret) ** 2))
    np.testing.assert_allclose(loss, ref, rtol=1e-6)
    plain, _ = losses.value_loss(v, v_old, ret)
    np.testing.assert_allclose(plain, 0.5 * jnp.mean((v - ret) ** 2), rtol=1e-6)


def test_policy_loss_mask_leaves_samples_out():
    lp = jnp.log(jnp.array([1.5, 0.7, 3.0]))
    adv = jnp.array([1.0, -2.0, 5.0])
    where = jnp.array([True, True, False])
    loss, m = losses.policy_loss(lp, jnp.zeros(3), adv, drifts.spo, where=where,
                                 kl=jnp.array([0.1, 0.3, 100.0]))
    kept, _ = losses.policy_loss(lp[:2], jnp.zeros(2), adv[:2], drifts.spo)
    np.testing.assert_allclose(loss, kept, rtol=1e-6)
    r = jnp.exp(lp[:2])
    np.testing.assert_allclose(m["drift"], jnp.mean(drifts.spo(r, adv[:2])), rtol=1e-6)
    np.testing.assert_allclose(m["ratio_deviation"], jnp.mean(jnp.abs(r - 1)), rtol=1e-6)
    np.testing.assert_allclose(m["kl_new_old"], 0.2, rtol=1e-6)
    np.testing.assert_allclose(m["clipfrac"], 1.0)


def test_policy_loss_gradient_is_objective_gradient():
    """∂L/∂log π = −r·(Â − ∂D/∂r) per sample / N, for a drift with hyperparameters."""
    lp = jnp.log(jnp.array([0.6, 1.3, 2.0]))
    adv = jnp.array([-1.0, 0.5, 2.0])
    grad = jax.grad(lambda x: losses.policy_loss(x, jnp.zeros(3), adv, drifts.dpo,
                                                 drift_kwargs={"alpha": 1.0})[0])(lp)
    r = jnp.exp(lp)
    d_drift = jax.vmap(jax.grad(lambda r, a: drifts.dpo(r, a, alpha=1.0)))(r, adv)
    np.testing.assert_allclose(grad, -r * (adv - d_drift) / 3, rtol=1e-5)


def test_entropy_loss_is_minus_mean_entropy():
    h = jnp.array([0.5, 1.0, 4.0])
    loss, m = losses.entropy_loss(h, where=jnp.array([True, True, False]))
    np.testing.assert_allclose(loss, -0.75)
    np.testing.assert_allclose(m["entropy"], 0.75)


def test_shape_mismatches_are_refused_not_broadcast():
    """A ``[B, 1]`` advantage or value target against ``[B]`` would broadcast to ``[B, B]``."""
    import pytest

    from pgjax import advantages

    flat, column = jnp.zeros(4), jnp.ones((4, 1))
    with pytest.raises(AssertionError):
        losses.policy_loss(flat, flat, column, drifts.ppo)
    with pytest.raises(AssertionError):
        losses.value_loss(flat, flat, column)
    with pytest.raises(AssertionError):
        advantages.gae(flat, flat, column, flat > 0, flat > 0, gamma=0.99, lambda_=0.95)


def test_ratio_metrics_are_each_their_own_mean():
    """The four diagnostics (one stacked reduction) against their formulas, over [steps,
    samples] as the update passes them, with and without a mask."""
    log_ratio = jnp.log(jnp.array([[0.5, 1.1, 1.3], [0.9, 2.0, 1.0]]))
    drift = jnp.array([[0.1, 0.0, 0.4], [0.2, 0.8, 0.0]])
    r = jnp.exp(log_ratio)
    for where in (None, jnp.array([[True, False, True], [True, True, False]])):
        w = jnp.ones(r.shape, bool) if where is None else where
        m = losses.ratio_metrics(log_ratio, drift, clip_epsilon=0.2, where=where)
        np.testing.assert_allclose(m["drift"], jnp.mean(drift[w]), rtol=1e-6)
        np.testing.assert_allclose(m["approx_kl"], jnp.mean((r - 1 - log_ratio)[w]), rtol=1e-6)
        np.testing.assert_allclose(m["clipfrac"], jnp.mean(jnp.abs(r - 1)[w] > 0.2), rtol=1e-6)
        np.testing.assert_allclose(m["ratio_deviation"], jnp.mean(jnp.abs(r - 1)[w]), rtol=1e-6)
