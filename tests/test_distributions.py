import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.distributions import Categorical, DiagGaussian, TanhGaussian, log1m_tanh_sq


@pytest.fixture(scope="module")
def dists():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    cat_p = Categorical(jax.random.normal(k1, (5, 4)))
    cat_q = Categorical(jax.random.normal(k2, (5, 4)))
    gauss_p = DiagGaussian(jax.random.normal(k3, (5, 3)), jnp.array([-0.5, 0.0, 0.3]))
    gauss_q = DiagGaussian(jnp.zeros((5, 3)), jnp.array([0.2, -0.1, 0.0]))
    tanh_p = TanhGaussian(2.0 * gauss_p.mean, jnp.array([-0.5, 0.0, 0.7]))
    tanh_q = TanhGaussian(gauss_q.mean + 0.5, gauss_q.log_std)
    return (cat_p, cat_q), (gauss_p, gauss_q), (tanh_p, tanh_q)


def _mc(dist, fn, n=200_000):
    samples = jax.vmap(dist.sample)(jax.random.split(jax.random.key(1), n))
    return jnp.mean(jax.vmap(fn)(samples), axis=0)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_kl_self_is_zero(dists, which):
    p, _ = dists[which]
    np.testing.assert_allclose(p.kl(p), 0.0, atol=1e-6)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_entropy_is_minus_expected_log_prob(dists, which):
    p, _ = dists[which]
    np.testing.assert_allclose(_mc(p, lambda a: -p.log_prob(a)), p.entropy(), rtol=0.02)


@pytest.mark.parametrize("which", [0, 1, 2])
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


@pytest.mark.parametrize("batch, n", [((), 3), ((7,), 2), ((3, 5), 6)])
def test_categorical_log_prob_is_the_log_softmax_entry_exactly(batch, n):
    """The masked sum gives the gathered log-softmax entry and its gradient, bit for bit."""
    k1, k2 = jax.random.split(jax.random.key(4))
    logits = 3.0 * jax.random.normal(k1, batch + (n,))
    actions = jax.random.randint(k2, batch, 0, n)

    def gathered(logits):
        log_p = jax.nn.log_softmax(logits)
        return jnp.take_along_axis(log_p, actions[..., None], -1)[..., 0]

    def ours(logits):
        return Categorical(logits).log_prob(actions)

    np.testing.assert_array_equal(jax.jit(ours)(logits), jax.jit(gathered)(logits))
    weights = jnp.linspace(0.5, 2.0, actions.size).reshape(batch)
    def grad_of(log_prob):
        return jax.jit(jax.grad(lambda x: jnp.sum(weights * log_prob(x))))(logits)

    np.testing.assert_array_equal(grad_of(ours), grad_of(gathered))


def test_log1m_tanh_sq_is_stable():
    u = jnp.array([-30.0, -9.0, -1.0, 0.0, 0.5, 9.0, 30.0])
    stable = np.asarray(log1m_tanh_sq(u))
    assert np.all(np.isfinite(stable))
    exact = np.log1p(-np.tanh(np.asarray(u, np.float64)[1:-1]) ** 2)
    np.testing.assert_allclose(stable[1:-1], exact, rtol=1e-5, atol=1e-6)
    # Far out, log(1 − tanh² u) = log 4 − 2|u| + O(e^{−2|u|}).
    np.testing.assert_allclose(stable[[0, -1]], np.log(4.0) - 60.0, rtol=1e-6)


def _reference_log_det(mean, log_std):
    """E[log(1 − tanh² u)], u ~ N(μ, σ²), in float64 by the trapezoid rule on 400,001 points
    of z = (u − μ)/σ ∈ [−14, 14] (spacing 7e-5: resolves the bend at u = 0 up to σ ≈ e⁵)."""
    z = np.linspace(-14.0, 14.0, 400_001)
    u = np.abs(mean + np.exp(log_std) * z)
    log_det = 2.0 * (np.log(2.0) - u - np.log1p(np.exp(-2.0 * u)))
    return np.trapezoid(log_det * np.exp(-0.5 * z**2), z) / np.sqrt(2.0 * np.pi)


MEANS = (0.0, 0.3, -1.0, 2.5, -6.0, 15.0, 50.0)
LOG_STDS = np.linspace(-8.0, 5.0, 27)  # −5 … 3 is where policies live, with margin


def test_tanh_gaussian_entropy_matches_a_fine_grid_quadrature():
    mean = jnp.asarray(np.repeat(MEANS, len(LOG_STDS)), jnp.float32)[:, None]
    log_std = jnp.asarray(np.tile(LOG_STDS, len(MEANS)), jnp.float32)[:, None]
    entropy = np.asarray(jax.jit(lambda m, s: TanhGaussian(m, s).entropy())(mean, log_std))
    reference = np.array([float(ls) + 0.5 * np.log(2 * np.pi * np.e) + _reference_log_det(
        float(m), float(ls)) for m, ls in zip(mean[:, 0], log_std[:, 0])])
    # float32: 2·E|u| ≈ 240 at σ = e⁵ rounds at ~1e-5
    np.testing.assert_allclose(entropy, reference, rtol=1e-6, atol=3e-5)


def test_tanh_gaussian_entropy_gradient_matches_the_reference():
    points = [(0.0, 3.0), (0.4, 2.0), (-2.0, 0.0), (1.0, -3.0), (6.0, 2.5)]
    step = 1e-4
    for mean, log_std in points:
        grad = jax.grad(lambda p: TanhGaussian(p[:1], p[1:]).entropy())(
            jnp.array([mean, log_std], jnp.float32))
        expected = [(_reference_log_det(mean + step, log_std)
                     - _reference_log_det(mean - step, log_std)) / (2 * step),
                    1.0 + (_reference_log_det(mean, log_std + step)
                           - _reference_log_det(mean, log_std - step)) / (2 * step)]
        np.testing.assert_allclose(np.asarray(grad), expected, rtol=2e-3, atol=2e-4)


def test_tanh_gaussian_log_prob_finite_at_the_bounds():
    d = TanhGaussian(jnp.array([0.3, -0.2]), jnp.array([0.0, -1.0]))
    near = jnp.array([[1.0 - 1e-6, -(1.0 - 1e-6)], [-(1.0 - 1e-6), 1.0 - 1e-6]])
    assert np.all(np.isfinite(d.log_prob_squashed(near)))
    # Stored pre-tanh actions can lie further out than float32 can squash (tanh(u) == ±1).
    far = jnp.array([[20.0, -20.0], [-12.0, 15.0]])
    assert np.all(np.asarray(jnp.abs(jnp.tanh(far))) == 1.0)
    log_p = d.log_prob(far)
    grads = jax.grad(lambda m: d.replace(mean=m).log_prob(far).sum())(d.mean)
    assert np.all(np.isfinite(log_p)) and np.all(np.isfinite(grads))


def test_tanh_gaussian_density_by_change_of_variables():
    d = TanhGaussian(jnp.array([0.7]), jnp.array([0.2]))
    # A proper density on (−1, 1): integrates to 1 (midpoint rule in u-space, a = tanh u).
    u = jnp.linspace(-12.0, 12.0, 200_001)
    a = jnp.tanh(u)
    density = jnp.exp(d.log_prob(u[:, None]))
    np.testing.assert_allclose(np.trapezoid(density, a), 1.0, rtol=1e-3)
    # And it is the density of tanh of the Gaussian samples: histogram against π(a).
    samples = jnp.tanh(jax.vmap(d.sample)(jax.random.split(jax.random.key(3), 400_000)))
    counts, edges = np.histogram(np.asarray(samples[:, 0]), bins=40, range=(-0.99, 0.99))
    centres = 0.5 * (edges[1:] + edges[:-1])
    expected = np.exp(d.log_prob_squashed(jnp.asarray(centres)[:, None]))
    empirical = counts / (len(samples) * (edges[1] - edges[0]))
    np.testing.assert_allclose(empirical, expected, rtol=0.1, atol=0.02)
    # The ratio of two squashed Gaussians at one pre-tanh action is the Gaussians' ratio.
    q = TanhGaussian(jnp.array([0.1]), jnp.array([-0.3]))
    x = jnp.array([[0.4], [3.0]])
    np.testing.assert_allclose(d.log_prob(x) - q.log_prob(x),
                               DiagGaussian(d.mean, d.log_std).log_prob(x)
                               - DiagGaussian(q.mean, q.log_std).log_prob(x), rtol=1e-5)
