import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.distributions import Categorical, DiagGaussian


@pytest.fixture(scope="module")
def dists():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    cat_p = Categorical(jax.random.normal(k1, (5, 4)))
    cat_q = Categorical(jax.random.normal(k2, (5, 4)))
    gauss_p = DiagGaussian(jax.random.normal(k3, (5, 3)), jnp.array([-0.5, 0.0, 0.3]))
    gauss_q = DiagGaussian(jnp.zeros((5, 3)), jnp.array([0.2, -0.1, 0.0]))
    return (cat_p, cat_q), (gauss_p, gauss_q)


def _mc(dist, fn, n=200_000):
    samples = jax.vmap(dist.sample)(jax.random.split(jax.random.key(1), n))
    return jnp.mean(jax.vmap(fn)(samples), axis=0)


@pytest.mark.parametrize("which", [0, 1])
def test_kl_self_is_zero(dists, which):
    p, _ = dists[which]
    np.testing.assert_allclose(p.kl(p), 0.0, atol=1e-6)


@pytest.mark.parametrize("which", [0, 1])
def test_entropy_is_minus_expected_log_prob(dists, which):
    p, _ = dists[which]
    np.testing.assert_allclose(_mc(p, lambda a: -p.log_prob(a)), p.entropy(), rtol=0.02)


@pytest.mark.parametrize("which", [0, 1])
def test_kl_matches_monte_carlo(dists, which):
    p, q = dists[which]
    mc = _mc(p, lambda a: p.log_prob(a) - q.log_prob(a))
    np.testing.assert_allclose(mc, p.kl(q), rtol=0.05, atol=0.01)
    assert np.all(np.asarray(p.kl(q)) >= 0)


def test_gaussian_log_prob_sums_dimensions():
    d = DiagGaussian(jnp.array([0.5, -1.0]), jnp.array([0.1, -0.2]))
    a = jnp.array([0.0, 0.3])
    one_d = [DiagGaussian(d.mean[i:i + 1], d.log_std[i:i + 1]).log_prob(a[i:i + 1])
             for i in range(2)]
    np.testing.assert_allclose(d.log_prob(a), sum(one_d), rtol=1e-6)


def test_categorical_log_prob_normalised():
    p = Categorical(jnp.array([1.0, 2.0, 3.0]))
    total = sum(jnp.exp(p.log_prob(jnp.array(a))) for a in range(3))
    np.testing.assert_allclose(total, 1.0, rtol=1e-6)
