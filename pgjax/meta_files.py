"""Files of a meta-learning run (:func:`pgjax.meta.meta_train`): ``fitness.csv``,
``mean.npz``/``best.npz``, ``meta.json`` and ``fitness.png``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from pgjax import drifts
from pgjax.checks import read_json
from pgjax.run_files import figure, versions

#: The file that marks a meta-learning run directory: its spec (what
#: :func:`pgjax.meta.resume_meta` reads), generations done, timings and versions.
SPEC_FILE = "meta.json"

#: Per-generation records in ``fitness.csv`` and :attr:`pgjax.meta.MetaResult.history`.
HISTORY = ("population_mean", "population_best", "mean_fitness", "sigma")


def is_meta_dir(out) -> bool:
    """Whether ``out`` was written by :func:`pgjax.meta.meta_train`."""
    return (Path(out) / SPEC_FILE).is_file()


def write_spec(spec, out, generations_done: int) -> None:
    """``meta.json`` at the start of a run: what :func:`pgjax.meta.resume_meta` reads."""
    (Path(out) / SPEC_FILE).write_text(json.dumps(
        {"spec": spec.to_dict(), "generations_done": generations_done,
         "versions": versions()}, indent=2, default=str))


def read_spec(out) -> dict:
    """The spec (a dict, :meth:`pgjax.meta.MetaSpec.from_dict`) of the run in ``out``."""
    path = Path(out) / SPEC_FILE
    if not path.exists():
        raise ValueError(f"resume: {out} has no {SPEC_FILE} (a directory written by "
                         "`pgjax meta`)")
    values = read_json(path, "resume")
    if not isinstance(values.get("spec"), dict):
        raise ValueError(f"resume: {path} is damaged (no spec); allowed: the file pgjax wrote")
    return values["spec"]


def write_meta(result, out) -> None:
    """``fitness.csv``, ``mean.npz``/``best.npz``, ``meta.json`` and ``fitness.png`` of a
    finished :class:`pgjax.meta.MetaResult`."""
    out = Path(out)
    history = result.history
    with open(out / "fitness.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["generation", *HISTORY])
        for g in range(len(history[HISTORY[0]])):
            writer.writerow([g, *(f"{float(history[name][g]):.6g}" for name in HISTORY)])
    drifts.save_params(out / "mean.npz", result.mean_params)
    if result.best_params is not None:
        drifts.save_params(out / "best.npz", result.best_params)
    (out / SPEC_FILE).write_text(json.dumps(
        {"spec": result.spec.to_dict(), "generations_done": len(history[HISTORY[0]]),
         "seconds": result.seconds, "versions": versions()}, indent=2, default=str))
    plot_fitness(history, out / "fitness.png", title=f"{result.spec.algo} on "
                 f"{', '.join(result.spec.envs)}")


def plot_fitness(history: dict, path, title: str = "") -> None:
    """Population mean and best fitness, and the ES mean's, per generation."""
    fig, ax = figure(figsize=(6, 3.5))
    generations = np.arange(len(history["mean_fitness"]))
    ax.plot(generations, history["population_mean"], label="population mean")
    ax.plot(generations, history["population_best"], label="population best", alpha=0.6)
    ax.plot(generations, history["mean_fitness"], label="ES mean", lw=2)
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (final return)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
