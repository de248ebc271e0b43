"""Run-directory I/O shared by ``pgjax train``, ``pgjax sweep`` and ``pgjax meta``: package
versions and the git revision for the records, metric tables, CSV concatenation and figures
(matplotlib's ``Figure`` without pyplot, so writing a plot leaves a notebook's backend alone).
"""

from __future__ import annotations

import csv
import platform
import subprocess
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["concatenate_csv", "figure", "git_revision", "plot_curve", "versions",
           "write_metrics_csv"]

_PACKAGES = ("pgjax", "jax", "jaxlib", "flax", "optax", "chex", "gymnax", "brax", "evosax",
             "numpy")


def versions() -> dict:
    """Python's and the installed stack's versions (what a run was produced with)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_revision() -> str | None:
    """The pgjax checkout's commit (``+dirty`` when it has uncommitted changes), if any."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=10,
                               check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev + ("+dirty" if dirty else "")) or None


def write_metrics_csv(metrics: dict, path: Path) -> None:
    """One row per run per update: ``seed, update`` and every metric (name → ``[runs,
    updates]``), in the order of ``metrics``."""
    names = list(metrics)
    runs, updates = metrics[names[0]].shape
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seed", "update", *names])
        for s in range(runs):
            for u in range(updates):
                writer.writerow([s, u + 1, *(_fmt(metrics[k][s, u]) for k in names)])


def _fmt(x):
    x = x.item()
    return x if isinstance(x, int) else f"{x:.6g}"


def concatenate_csv(paths, target: Path) -> None:
    """The CSV files ``paths`` as one file (the first one's header)."""
    with open(target, "w") as out:
        for i, path in enumerate(paths):
            with open(path) as f:
                header = f.readline()
                if i == 0:
                    out.write(header)
                out.writelines(f)


def figure(rows: int = 1, cols: int = 1, **kwargs):
    """``(fig, axes)`` as ``plt.subplots`` gives them, from ``matplotlib.figure.Figure`` (no
    pyplot state, no backend switch)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(rows, cols, **kwargs)


def plot_curve(metrics: dict, path: Path, title: str) -> None:
    """Episodic return against env steps, per run and their mean."""
    steps = metrics["env_steps"][0]
    returns = metrics["episodic_return"]
    fig, ax = figure(figsize=(6, 4))
    for s, r in enumerate(returns):
        ok = np.isfinite(r)
        ax.plot(steps[ok], r[ok], lw=0.8, alpha=0.5, label=f"seed {s}" if len(returns) <= 8
                else None)
    with warnings.catch_warnings():  # an update where no run finished an episode: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(returns, axis=0)
    ok = np.isfinite(mean)
    ax.plot(steps[ok], mean[ok], color="black", lw=2, label="mean")
    ax.set(xlabel="env steps", ylabel="episodic return", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
