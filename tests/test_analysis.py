"""pgjax.analysis against direct numpy computations (and rliable when it imports)."""

import numpy as np
import pytest

from pgjax import analysis


def test_iqm_is_the_mean_of_the_middle_half():
    rng = np.random.default_rng(0)
    for n in (4, 7, 8, 10, 13):
        x = rng.normal(size=n)
        cut = n // 4
        expected = np.sort(x)[cut:n - cut].mean()
        assert analysis.iqm(x) == pytest.approx(expected)
    scores = rng.normal(size=(3, 10, 4))  # batch × runs × tasks
    expected = [np.sort(s.ravel())[10:30].mean() for s in scores]
    np.testing.assert_allclose(analysis.aggregate_iqm(scores), expected)


def test_iqm_matches_scipy_trim_mean():
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(1).standard_cauchy(size=(6, 11))
    np.testing.assert_allclose(analysis.iqm(x, axis=-1), scipy_stats.trim_mean(x, 0.25, axis=-1))


def _loop_bootstrap(scores, statistic, reps, seed, confidence=0.95):
    """The textbook loop: resample each task's runs independently, one replicate at a time."""
    rng = np.random.default_rng(seed)
    runs, tasks = scores.shape
    stats = []
    for _ in range(reps):
        sample = np.stack([scores[rng.integers(0, runs, size=runs), t] for t in range(tasks)],
                          axis=1)
        stats.append(statistic(sample))
    alpha = 100 * (1 - confidence) / 2
    return np.percentile(stats, [alpha, 100 - alpha])


def test_bootstrap_ci_agrees_with_a_loop_over_replicates():
    scores = np.random.default_rng(2).gamma(2.0, size=(10, 5))
    point, low, high = analysis.bootstrap_ci(scores, reps=20_000, seed=3)
    ref_low, ref_high = _loop_bootstrap(scores, lambda s: analysis.iqm(s.ravel()), 4000, seed=4)
    assert point == pytest.approx(analysis.iqm(scores.ravel()))
    width = ref_high - ref_low
    assert abs(low - ref_low) < 0.06 * width and abs(high - ref_high) < 0.06 * width
    # Mean statistic: the CI is close to the normal approximation mean ± 1.96·sd/√n.
    _, mean_low, mean_high = analysis.bootstrap_ci(
        scores, analysis.aggregate_mean, reps=20_000)
    sd = np.sqrt(sum(scores[:, t].var() / 10 for t in range(5))) / 5
    assert mean_high - mean_low == pytest.approx(2 * 1.96 * sd, rel=0.08)


def test_bootstrap_is_stratified_by_task():
    # Every run of a task scores the same: resampling within tasks never changes the mean.
    scores = np.tile(np.arange(4.0), (6, 1))
    point, low, high = analysis.bootstrap_ci(scores, analysis.aggregate_mean, reps=500)
    assert point == low == high == 1.5


def test_bootstrap_over_curve_points_equals_pointwise():
    curve = np.random.default_rng(5).normal(size=(8, 1, 6))  # runs × tasks × time
    point, low, high = analysis.bootstrap_ci(curve, reps=3000, seed=0)
    assert point.shape == low.shape == high.shape == (6,)
    for t in range(6):
        p, lo, hi = analysis.bootstrap_ci(curve[:, :, t], reps=3000, seed=0)
        assert (point[t], low[t], high[t]) == pytest.approx((p, lo, hi))


def test_normalize_and_performance_profile():
    scores = np.array([[0.0, 10.0], [5.0, 20.0], [10.0, 30.0]])
    norm = analysis.normalize(scores, low=[0.0, 10.0], high=[10.0, 30.0])
    np.testing.assert_allclose(norm, [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    taus = np.array([-0.1, 0.25, 0.5, 0.75, 1.0])
    expected = [np.mean([np.mean(norm[:, t] > tau) for t in range(2)]) for tau in taus]
    np.testing.assert_allclose(analysis.performance_profile(norm, taus), expected)


def test_against_rliable_when_importable():
    rliable = pytest.importorskip("rliable")  # noqa: F841 - optional cross-check
    from rliable import library as rly
    from rliable import metrics

    scores = np.random.default_rng(6).normal(size=(10, 5))
    points, intervals = rly.get_interval_estimates(
        {"a": scores}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=20_000)
    point, low, high = analysis.bootstrap_ci(scores, reps=20_000)
    assert point == pytest.approx(points["a"][0])
    width = intervals["a"][1, 0] - intervals["a"][0, 0]
    assert abs(low - intervals["a"][0, 0]) < 0.05 * width
    assert abs(high - intervals["a"][1, 0]) < 0.05 * width
