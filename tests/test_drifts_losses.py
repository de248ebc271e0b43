import jax
import jax.numpy as jnp
import numpy as np

from pgjax import drifts, losses


def test_ppo_drift_identity():
    r = jnp.linspace(0.0, 3.0, 301)[:, None]
    a = jnp.linspace(-2.0, 2.0, 41)[None, :]
    objective = r * a - drifts.ppo(r, a, epsilon=0.2)
    np.testing.assert_allclose(objective, jnp.minimum(r * a, jnp.clip(r, 0.8, 1.2) * a),
                               atol=1e-6)


def test_ppo_drift_is_valid():
    a = jnp.linspace(-2.0, 2.0, 41)
    r = jnp.linspace(0.0, 3.0, 301)[:, None]
    assert np.all(np.asarray(drifts.ppo(r, a)) >= 0)
    np.testing.assert_allclose(drifts.ppo(jnp.ones_like(a), a), 0.0)
    slope = jax.vmap(jax.grad(lambda r, a: drifts.ppo(r, a)), (None, 0))(1.0, a)
    np.testing.assert_allclose(slope, 0.0)


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
