"""The drift invariants of reference/algorithms.md §11, checked on grids and by autodiff."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import drifts

RATIOS = jnp.concatenate([jnp.linspace(0.05, 3.0, 119), jnp.array([1.0])])[:, None]
ADVANTAGES = jnp.linspace(-3.0, 3.0, 25)[None, :]
RANDOM_LPO = drifts.init_lpo(jax.random.key(1), scale=0.5)
RANDOM_TALPO = drifts.init_talpo(jax.random.key(2), scale=0.5)

#: Every shipped (ratio, advantage) drift, hyperparameters and learned parameters bound.
SHIPPED = {
    "ppo": drifts.ppo,
    "ppo eps 0.1": functools.partial(drifts.ppo, epsilon=0.1),
    "spo": drifts.spo,
    "spo eps 0.3": functools.partial(drifts.spo, epsilon=0.3),
    "dpo": drifts.dpo,
    "dpo alpha 0.5 beta 1.5": functools.partial(drifts.dpo, alpha=0.5, beta=1.5),
    "lpo zero": functools.partial(drifts.lpo, drifts.init_lpo()),
    "lpo random": functools.partial(drifts.lpo, RANDOM_LPO),
    "lpo random no ppo-init": functools.partial(drifts.lpo, RANDOM_LPO, ppo_init=False),
    "talpo random progress 0.3": lambda r, a: drifts.talpo(RANDOM_TALPO, r, a, 0.3),
    "talpo random progress 0.9 no ppo-init": lambda r, a: drifts.talpo(
        RANDOM_TALPO, r, a, 0.9, ppo_init=False),
}


@pytest.fixture(params=[False, True], ids=["eager", "jit"])
def maybe_jit(request):
    return jax.jit if request.param else (lambda f: f)


@pytest.mark.parametrize("name", SHIPPED)
def test_drift_is_valid(name, maybe_jit):
    """D ≥ 0 on the grid, D(1, Â) = 0 and ∂D/∂r(1, Â) = 0 (Mirror Learning's conditions)."""
    drift = SHIPPED[name]
    values = np.asarray(maybe_jit(drift)(RATIOS, jnp.broadcast_to(ADVANTAGES, (120, 25))))
    assert values.shape == (120, 25)
    assert np.all(values >= 0.0), name
    a = ADVANTAGES[0]
    np.testing.assert_allclose(maybe_jit(drift)(jnp.ones_like(a), a), 0.0, atol=1e-7)
    slope = maybe_jit(jax.vmap(jax.grad(lambda r, a: drift(r, a)), (None, 0)))(1.0, a)
    np.testing.assert_allclose(slope, 0.0, atol=1e-6)


@pytest.mark.parametrize("name", ["dpo", "lpo random", "talpo random progress 0.3"])
def test_jit_and_eager_agree(name):
    drift = SHIPPED[name]
    a = jnp.broadcast_to(ADVANTAGES, (120, 25))
    np.testing.assert_allclose(jax.jit(drift)(RATIOS, a), drift(RATIOS, a), rtol=1e-5,
                               atol=1e-6)


def test_ppo_drift_identity():
    r, a = RATIOS, ADVANTAGES
    objective = r * a - drifts.ppo(r, a, epsilon=0.2)
    np.testing.assert_allclose(objective, jnp.minimum(r * a, jnp.clip(r, 0.8, 1.2) * a),
                               atol=1e-6)


@pytest.mark.parametrize("epsilon", [0.1, 0.2, 0.35])
@pytest.mark.parametrize("advantage", [-2.0, -0.3, 0.5, 3.0])
def test_spo_objective_peaks_at_the_clip_boundary(epsilon, advantage):
    r = jnp.linspace(0.0, 2.0, 20001)
    objective = r * advantage - drifts.spo(r, advantage, epsilon)
    best = float(r[jnp.argmax(objective)])
    assert abs(best - (1.0 + np.sign(advantage) * epsilon)) < 3e-4


def _objective_slope(drift, r, a):
    return jax.vmap(jax.grad(lambda r, a: r * a - drift(r, a)))(r, a)


def test_dpo_soft_clip_slope_for_positive_advantage():
    """For Â > 0 and r > 1: d(r·Â − D)/dr = Â·sech²((r − 1)Â/α)."""
    r = jnp.tile(jnp.linspace(1.01, 4.0, 50), 4)
    a = jnp.repeat(jnp.array([0.25, 0.5, 1.0, 2.5]), 50)
    for alpha in (2.0, 0.7):
        slope = _objective_slope(functools.partial(drifts.dpo, alpha=alpha), r, a)
        np.testing.assert_allclose(slope, a / jnp.cosh((r - 1.0) * a / alpha) ** 2, rtol=1e-4,
                                   atol=1e-6)
    # No clipping for r < 1: the full slope Â.
    low = jnp.linspace(0.1, 0.99, 20)
    np.testing.assert_allclose(_objective_slope(drifts.dpo, low, jnp.ones(20)), 1.0, rtol=1e-5)


def test_dpo_rolls_back_negative_advantages():
    """For Â < 0 and r < 1: slope Â − (Â/r)(1 − sech²(log r·Â/β)), positive below a ratio r*
    (r* ≈ 0.41, 0.56, 0.70 for Â = −0.5, −1, −2 with β = 0.6, reference/algorithms.md §7)."""
    r = jnp.linspace(0.05, 0.99, 200)
    for a, r_star in ((-0.5, 0.41), (-1.0, 0.56), (-2.0, 0.70)):
        adv = jnp.full_like(r, a)
        slope = _objective_slope(drifts.dpo, r, adv)
        expected = a - (a / r) * (1.0 - 1.0 / jnp.cosh(jnp.log(r) * a / 0.6) ** 2)
        np.testing.assert_allclose(slope, expected, rtol=1e-4, atol=1e-5)
        crossing = float(r[jnp.argmax(slope < 0)])  # first ratio with a negative slope
        assert abs(crossing - r_star) < 0.015, (a, crossing)


def test_lpo_with_zero_parameters_is_ppo_or_plain_importance_sampling():
    zero = drifts.init_lpo()
    r, a = RATIOS, ADVANTAGES
    np.testing.assert_allclose(drifts.lpo(zero, r, a), drifts.ppo(r, a, 0.2), atol=1.01e-4)
    np.testing.assert_allclose(drifts.lpo(zero, r, a, epsilon=0.1), drifts.ppo(r, a, 0.1),
                               atol=1.01e-4)
    np.testing.assert_array_equal(drifts.lpo(zero, r, a, ppo_init=False), 0.0)
    np.testing.assert_array_equal(drifts.talpo(drifts.init_talpo(), r, a, 0.5, ppo_init=False),
                                  0.0)


def test_lpo_features_and_network_layout():
    r, a = jnp.array([0.5, 2.0]), jnp.array([-1.5, 0.7])
    ell, u = np.log(np.asarray(r)), 1.0 - np.asarray(r)
    base = np.stack([ell, ell**2, u, u**2], -1)
    expected = np.concatenate([base, np.asarray(a)[:, None] * base], -1)
    np.testing.assert_allclose(drifts.lpo_features(r, a), expected, rtol=1e-6)
    params = drifts.init_lpo(jax.random.key(3), scale=0.3)
    assert params.w_hidden.size + params.w_out.size == 1152
    assert sum(x.size for x in jax.tree.leaves(drifts.init_talpo())) == 2176
    f = np.tanh(expected @ np.asarray(params.w_hidden)) @ np.asarray(params.w_out)
    np.testing.assert_allclose(drifts.lpo(params, r, a, ppo_init=False),
                               np.maximum(f - 1e-4, 0.0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("progress", [0.0, 0.4, 1.0])
def test_talpo_is_lpo_with_progress_mixed_weights(progress):
    """x16 = [x, p·x], so W16ᵀx16 = (W[:8] + p·W[8:])ᵀx: TA-LPO at progress p is an LPO."""
    p = RANDOM_TALPO
    mixed = drifts.DriftNetParams(p.w_hidden[:8] + progress * p.w_hidden[8:], p.w_out)
    r, a = RATIOS, ADVANTAGES
    np.testing.assert_allclose(drifts.talpo(p, r, a, progress), drifts.lpo(mixed, r, a),
                               rtol=1e-4, atol=1e-5)


def test_params_round_trip_through_a_file(tmp_path):
    path = tmp_path / "drift.npz"
    drifts.save_params(path, RANDOM_TALPO)
    loaded = drifts.load_params(path)
    for x, y in zip(jax.tree.leaves(loaded), jax.tree.leaves(RANDOM_TALPO)):
        np.testing.assert_array_equal(x, y)
    np.savez(tmp_path / "bad.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="w_hidden"):
        drifts.load_params(tmp_path / "bad.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    for path in (tmp_path / "empty.npz", tmp_path / "missing.npz"):
        with pytest.raises(ValueError, match="^drift_params: cannot read"):
            drifts.load_params(path)


def _categorical_kl_drift(logits, old_logits, progress):
    from pgjax.distributions import Categorical

    return drifts.mdpo(Categorical(logits).kl(Categorical(old_logits)), progress, num_updates=4)


def test_mdpo_drift_is_valid_in_policy_space():
    """MDPO's drift is a function of the policy, not of r: ≥ 0, zero with zero gradient at
    π = π_old, and scaled by 1/t_k with t_k = 1 − (k − 1)/K (K = 4: t_0 = 1.25, t_3 = 0.5)."""
    old = jax.random.normal(jax.random.key(0), (16, 4))
    new = old + jax.random.normal(jax.random.key(1), (16, 4))
    assert np.all(np.asarray(_categorical_kl_drift(new, old, 0.0)) > 0.0)
    np.testing.assert_allclose(_categorical_kl_drift(old, old, 0.5), 0.0, atol=1e-6)
    grad = jax.grad(lambda x: _categorical_kl_drift(x, old, 0.5).sum())(old)
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)
    np.testing.assert_allclose(_categorical_kl_drift(new, old, 0.75),
                               2.5 * _categorical_kl_drift(new, old, 0.0), rtol=1e-5)
