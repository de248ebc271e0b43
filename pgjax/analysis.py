"""Statistics researchers publish for RL benchmarks, in vectorised numpy: the interquartile mean
(IQM), stratified bootstrap confidence intervals, score normalisation and performance profiles
(Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical Precipice",
NeurIPS; the definitions of ``rliable``), and the plots of training runs and sweeps
(:func:`plot_runs`, ``pgjax plot DIR [DIR ...]``).

Scores are arrays ``[..., runs, tasks]``: runs (seeds) of one method on each task (env).
"""

from __future__ import annotations

import csv
import dataclasses
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pgjax.results import load_results, load_sweep

__all__ = [
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "bootstrap_ci",
    "iqm",
    "load_sweep",
    "normalize",
    "performance_profile",
    "plot_runs",
    "plot_sweep",
]


def iqm(x, axis=-1):
    """Interquartile mean: the mean of the middle half after dropping ``⌊n/4⌋`` values at each
    end of the sorted sample (``scipy.stats.trim_mean(x, 0.25)``, rliable's IQM).

    Example:
      >>> from pgjax.analysis import iqm
      >>> float(iqm([1.0, 2.0, 3.0, 4.0, 100.0, -50.0, 5.0, 6.0]))
      3.5
    """
    x = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    cut = int(0.25 * n)
    return np.take(x, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def aggregate_iqm(scores):
    """IQM over all runs and tasks: ``[..., runs, tasks] -> [...]``."""
    scores = np.asarray(scores)
    return iqm(scores.reshape(scores.shape[:-2] + (-1,)), axis=-1)


def aggregate_mean(scores):
    """Mean over all runs and tasks: ``[..., runs, tasks] -> [...]``."""
    return np.asarray(scores).mean(axis=(-2, -1))


def aggregate_median(scores):
    """Median over tasks of the mean over runs (rliable's ``aggregate_median``)."""
    return np.median(np.asarray(scores).mean(axis=-2), axis=-1)


def bootstrap_ci(scores, statistic: Callable = aggregate_iqm, *, reps: int = 50_000,
                 confidence: float = 0.95, seed: int = 0, max_elements: int = 2 ** 24):
    """Point estimate and percentile stratified-bootstrap confidence interval.

    Each replicate resamples the runs with replacement *within each task* (the tasks are the
    strata), ``x*_{i,t} = x_{I_{i,t}, t}`` with ``I_{i,t} ~ U{0..runs−1}``, and applies
    ``statistic``; the interval is the ``(1 ± confidence)/2`` percentiles of the replicates
    (Agarwal et al. 2021, §4; Efron & Tibshirani 1993).

    Args:
      scores: ``[runs, tasks]`` or ``[runs, tasks, *rest]`` (e.g. a learning curve's points);
        the same runs are drawn for every entry of ``rest``.
      statistic: maps ``[reps, runs, tasks]`` (with ``rest`` moved in front:
        ``[*rest, reps, runs, tasks]``) to the reduced array (``[*rest, reps]``).
      reps: bootstrap replicates; computed in blocks of at most ``max_elements`` values.

    Returns:
      ``(point, low, high)``, each of shape ``rest`` (scalars for ``[runs, tasks]``).

    Example:
      >>> import numpy as np
      >>> from pgjax.analysis import bootstrap_ci
      >>> scores = np.random.default_rng(0).normal(size=(10, 5))
      >>> point, low, high = bootstrap_ci(scores, reps=2000)
      >>> bool(low < point < high)
      True
    """
    scores = np.asarray(scores, dtype=np.float64)
    runs, tasks = scores.shape[:2]
    rest = scores.shape[2:]
    moved = np.moveaxis(scores.reshape(runs, tasks, -1), -1, 0)  # [R, runs, tasks]
    point = statistic(moved)
    rng = np.random.default_rng(seed)
    block = max(1, max_elements // max(1, moved.size))
    replicates = []
    for start in range(0, reps, block):
        n = min(block, reps - start)
        index = rng.integers(0, runs, size=(n, runs, tasks))
        sample = moved[:, index, np.arange(tasks)]  # [R, n, runs, tasks]
        replicates.append(statistic(sample))
    replicates = np.concatenate(replicates, axis=-1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(replicates, [100 * alpha, 100 * (1 - alpha)], axis=-1)
    return tuple(np.asarray(v).reshape(rest)[()] for v in (point, low, high))


def normalize(scores, low, high):
    """Normalised score ``(x − low)/(high − low)`` per task (``low``/``high`` broadcast over the
    task axis, e.g. a random policy's and a reference score)."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return (np.asarray(scores, dtype=np.float64) - low) / np.where(high == low, 1.0, high - low)


def performance_profile(scores, taus):
    """Score distribution ``F(τ) = (1/T) Σ_t (1/N) Σ_i 1[x_{i,t} > τ]`` — the fraction of runs
    above each threshold, averaged over tasks (rliable ``create_performance_profile`` with
    ``use_score_distribution=True``): ``[..., runs, tasks] -> [..., len(taus)]``."""
    scores = np.asarray(scores, dtype=np.float64)
    above = scores[..., None] > np.asarray(taus, dtype=np.float64)
    return above.mean(axis=(-3, -2))


# --- run and sweep directories --------------------------------------------------------------


@dataclasses.dataclass
class Plots:
    """What :func:`plot_runs` wrote, and how the aggregate normalised the scores."""

    paths: list  #: the images and ``summary.csv``
    normalisation: str  #: the sentence the aggregate figure states
    bounds: dict  #: ``env → (low, high)`` used to normalise


def _forward_fill(values):
    """Carry each run's last finite value over the updates where no episode ended."""
    out = values.copy()
    for t in range(1, out.shape[-1]):
        gap = ~np.isfinite(out[..., t])
        out[gap, t] = out[gap, t - 1]
    return out


def plot_runs(directories, out=None, *, reps: int = 2000, references: dict | None = None,
              metric: str = "episodic_return") -> Plots:
    """``pgjax plot DIR [DIR ...]``: training runs and sweeps compared on one set of figures.

    Writes ``curves.png`` (IQM of ``metric`` against env steps per env, 95% bootstrap band over
    seeds), ``final.png`` (final-return IQM and 95% CI per method and env), ``aggregate.png``
    (IQM with stratified-bootstrap CI across envs and the performance profile, on scores
    normalised per env as ``(x − low)/(high − low)`` with ``references[env] = (low, high)``, or
    else the lowest and highest final return plotted — the figure says which) and
    ``summary.csv`` into ``out`` (default: ``DIR/plots`` for one directory, ``plots`` for
    several). ``directories`` are ``pgjax train`` or ``pgjax sweep`` directories
    (:func:`pgjax.results.load_results`); a reference's env is the env id or its bare name
    (``CartPole-v1`` for ``gymnax/CartPole-v1``).
    """
    from pgjax.run_files import figure  # no pyplot: a notebook's backend stays as it is

    directories = [directories] if isinstance(directories, (str, Path)) else list(directories)
    results = load_results(directories, metric)
    final, curves = results.final, results.curves
    methods = list(final)
    envs = list(dict.fromkeys(e for m in methods for e in final[m]))
    bounds, note = _bounds(final, methods, envs, references or {})
    if out is None:
        out = Path(directories[0]) / "plots" if len(directories) == 1 else Path("plots")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, axes = figure(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for method in methods:
            if env not in curves.get(method, {}):
                continue
            steps, values = curves[method][env]
            filled = _forward_fill(values)
            ok = np.isfinite(filled).all(axis=0)
            point, low, high = bootstrap_ci(filled[:, None, ok], reps=reps)
            line, = ax.plot(steps[ok], point, label=method, lw=1.5)
            ax.fill_between(steps[ok], low, high, color=line.get_color(), alpha=0.2)
        ax.set(title=env, xlabel="env steps", ylabel=f"{metric} (IQM, 95% CI)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    paths.append(_save(fig, out / "curves.png"))

    rows = []
    fig, axes = figure(1, len(envs), figsize=(5.5 * len(envs), 0.5 * len(methods) + 1.5),
                       squeeze=False)
    for ax, env in zip(axes[0], envs):
        for i, method in enumerate(methods):
            scores = _finite(final[method].get(env))
            if not scores.size:
                continue
            point, low, high = bootstrap_ci(scores[:, None], reps=reps)
            rows.append([method, env, len(scores), float(point), float(low), float(high),
                         float(scores.mean())])
            ax.errorbar(point, i, xerr=[[point - low], [high - point]], fmt="o", capsize=3)
        ax.set(title=env, xlabel="final return (IQM, 95% CI)", yticks=range(len(methods)),
               yticklabels=methods if env == envs[0] else [])
        ax.grid(alpha=0.3, axis="x")
    paths.append(_save(fig, out / "final.png"))

    normalised = _normalised(final, methods, envs, bounds)
    fig, (left, right) = figure(1, 2, figsize=(11, 0.5 * len(methods) + 3))
    taus = np.linspace(0.0, 1.0, 101)
    for i, method in enumerate(methods):
        scores = normalised[method]
        if not scores.size:
            continue
        point, low, high = bootstrap_ci(scores, reps=reps)
        rows.append([method, "aggregate (normalised)", scores.shape[0], float(point),
                     float(low), float(high), float(scores.mean())])
        left.errorbar(point, i, xerr=[[point - low], [high - point]], fmt="o", capsize=3)
        right.plot(taus, performance_profile(scores, taus), label=method)
    left.set(title=f"IQM over {len(envs)} env(s), 95% stratified bootstrap CI",
             xlabel="normalised final return", yticks=range(len(methods)), yticklabels=methods)
    right.set(title="performance profile", xlabel="normalised score τ",
              ylabel="fraction of runs with score > τ")
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.text(0.01, 0.01, textwrap.fill(note, 150), fontsize=7, va="bottom")
    paths.append(_save(fig, out / "aggregate.png", rect=(0, 0.1, 1, 1)))

    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "env", "runs", "iqm", "ci_low", "ci_high", "mean"])
        writer.writerows([[*r[:3], *(f"{v:.6g}" for v in r[3:])] for r in rows])
    paths.append(out / "summary.csv")
    return Plots(paths, note, bounds)


def plot_sweep(directory, out=None, *, reps: int = 2000, references: dict | None = None):
    """``pgjax plot DIR`` for one sweep (or training run) directory: :func:`plot_runs`'s files
    in ``out`` (default ``DIR/plots``). Returns their paths."""
    return plot_runs([directory], out, reps=reps, references=references).paths


def _finite(scores):
    scores = np.asarray([] if scores is None else scores, dtype=np.float64)
    return scores[np.isfinite(scores)]


def _short(env: str) -> str:
    return env[len("gymnax/"):] if env.startswith("gymnax/") else env


def _bounds(final, methods, envs, references):
    """``(env → (low, high), the sentence saying so)``: the references given (by env id or
    bare name), else the lowest and highest final return plotted."""
    given = {}
    for key, value in references.items():
        matches = [e for e in envs if key in (e, _short(e), e.rpartition("/")[2])]
        if not matches:
            raise ValueError(f"--references: {key} is none of the plotted envs "
                             f"({', '.join(_short(e) for e in envs)})")
        given.update({e: tuple(float(v) for v in value) for e in matches})
    bounds, parts = {}, []
    for env in envs:
        if env in given:
            bounds[env] = given[env]
            parts.append(f"{_short(env)} {bounds[env][0]:g} to {bounds[env][1]:g} (reference)")
            continue
        values = np.concatenate([_finite(final[m].get(env)) for m in methods]) if methods \
            else np.array([])
        bounds[env] = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        parts.append(f"{_short(env)} {bounds[env][0]:.4g} to {bounds[env][1]:.4g} "
                     "(lowest to highest final return plotted)")
    note = ("normalised final return = (return − low) / (high − low) per env; low to high: "
            + "; ".join(parts))
    if len(given) < len(envs):
        note += "; --references ENV=LOW,HIGH sets them (e.g. a random and an expert policy)"
    return bounds, note


def _normalised(final, methods, envs, bounds):
    """``method → [runs, envs]`` normalised final returns (finite runs common to every env)."""
    out = {}
    for method in methods:
        per_env = [_finite(final[method][e]) for e in envs if e in final[method]]
        runs = min(len(s) for s in per_env)
        out[method] = np.stack([normalize(final[method][e][np.isfinite(final[method][e])][:runs],
                                          *bounds[e]) for e in envs if e in final[method]],
                               axis=-1)
    return out


def _save(fig, path, rect=None):
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    return path
