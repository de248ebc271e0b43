"""The results in run directories, as :mod:`pgjax.analysis` plots them: a ``pgjax train`` run
(``summary.json``, ``metrics.csv``) or a ``pgjax sweep`` (``final.csv``, ``results.csv``) read
into final returns and learning curves per *method* and env. Anything else is refused in one
line (``plot: PATH is ...``).

A method is the algorithm with its swept hyperparameter values (``"ppo learning_rate=0.001"``);
a method read from several directories is told apart by the directory's name
(``"ppo (ppo-CartPole-v1-20260101-120000)"``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np

__all__ = ["Results", "load_references", "load_results", "load_run", "load_sweep",
           "results_kind"]

TRAIN_FILES = ("summary.json", "metrics.csv")
SWEEP_FILES = ("final.csv", "results.csv")
WHAT = "a directory written by `pgjax train` or `pgjax sweep`"


@dataclasses.dataclass
class Results:
    """``final[method][env]``: final returns per seed (``[seeds]``); ``curves[method][env]``:
    ``(env_steps [updates], values [seeds, updates])`` of the plotted metric."""

    final: dict
    curves: dict


def results_kind(path) -> str:
    """``"train"`` or ``"sweep"``: what wrote ``path``; anything else is a one-line
    ``ValueError`` naming what ``path`` is."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"plot: {path} does not exist ({WHAT})")
    if not path.is_dir():
        raise ValueError(f"plot: {path} is a file, not a run directory ({WHAT})")
    names = {p.name for p in path.iterdir()}
    if all(n in names for n in TRAIN_FILES):
        return "train"
    if all(n in names for n in SWEEP_FILES):
        return "sweep"
    if not names:
        raise ValueError(f"plot: {path} is an empty directory ({WHAT})")
    if "spec.json" in names:
        raise ValueError(f"plot: {path} is a sweep with no results yet (no final.csv: it has "
                         f"not finished; `pgjax resume {path}` continues it)")
    if "meta.json" in names:
        raise ValueError(f"plot: {path} is a meta-learning run (its plot is fitness.png)")
    if "checkpoints" in names:
        raise ValueError(f"plot: {path} is a training run that has not finished (no "
                         f"summary.json; `pgjax resume {path}` continues it)")
    inside = sorted(p.name for p in path.iterdir() if p.is_dir() and (
        all((p / n).is_file() for n in TRAIN_FILES) or all((p / n).is_file()
                                                           for n in SWEEP_FILES)))
    hint = (f"; it holds run directories ({', '.join(inside[:3])}{', …' * (len(inside) > 3)}): "
            f"name them, e.g. `pgjax plot {path / inside[0]}`") if inside else ""
    raise ValueError(f"plot: {path} is neither a training run (summary.json, metrics.csv) nor "
                     f"a sweep (final.csv, results.csv){hint}")


def load_run(directory, metric: str = "episodic_return") -> Results:
    """A ``pgjax train`` run: one method (the algorithm) on its env, a value per seed."""
    directory = Path(directory)
    summary = json.loads((directory / "summary.json").read_text())
    method, env = summary["algo"], summary["env"]
    final = np.asarray(summary["final_return"], dtype=np.float64)
    points: dict = {}
    with open(directory / "metrics.csv") as f:
        for row in csv.DictReader(f):
            points.setdefault(int(row["seed"]), []).append(
                (int(row["update"]), int(float(row["env_steps"])), float(row[metric])))
    return Results({method: {env: final}}, {method: {env: _curve(points)}})


def _curve(points: dict):
    """``(steps, values [seeds, updates])`` from ``seed → [(update, steps, value)]``."""
    ordered = [sorted(points[s]) for s in sorted(points)]
    steps = np.array([p[1] for p in ordered[0]])
    return steps, np.array([[p[2] for p in run] for run in ordered])


def _method(row, swept):
    label = " ".join(f"{k}={row[k]}" for k in swept if row.get(k, "") != "")
    return f"{row['algo']} {label}".strip()


def load_sweep(directory, metric: str = "episodic_return"):
    """Read a sweep directory into ``(final, curves)`` (see :class:`Results`)."""
    directory = Path(directory)
    fixed = {"group", "algo", "env", "seed", "update", "env_steps", "metric", "value",
             "final_return"}
    final: dict = {}
    with open(directory / "final.csv") as f:
        reader = csv.DictReader(f)
        swept = [k for k in reader.fieldnames or () if k not in fixed]
        for row in reader:
            final.setdefault(_method(row, swept), {}).setdefault(row["env"], []).append(
                float(row["final_return"]))
    points: dict = {}
    with open(directory / "results.csv") as f:
        for row in csv.DictReader(f):
            if row["metric"] != metric:
                continue
            run = points.setdefault(_method(row, swept), {}).setdefault(row["env"], {})
            run.setdefault(int(row["seed"]), []).append(
                (int(row["update"]), int(row["env_steps"]), float(row["value"])))
    curves = {m: {e: _curve(seeds) for e, seeds in envs.items()} for m, envs in points.items()}
    return ({m: {e: np.array(v) for e, v in envs.items()} for m, envs in final.items()}, curves)


def load_results(directories, metric: str = "episodic_return") -> Results:
    """Every directory's results merged (after checking each with :func:`results_kind`); a
    method found in more than one directory gets the directory's name in brackets."""
    directories = [Path(d) for d in directories]
    if not directories:
        raise ValueError(f"plot: no directory given ({WHAT})")
    loaded = []
    for directory in directories:
        if results_kind(directory) == "train":
            loaded.append(load_run(directory, metric))
        else:
            loaded.append(Results(*load_sweep(directory, metric)))
        if not loaded[-1].final:
            raise ValueError(f"plot: {directory} is a sweep with no finished run in final.csv")
    counts: dict = {}
    for results in loaded:
        for method in results.final:
            counts[method] = counts.get(method, 0) + 1
    final, curves = {}, {}
    for i, (directory, results) in enumerate(zip(directories, loaded)):
        for method in results.final:
            label = method if counts[method] == 1 else f"{method} ({directory.name})"
            label = f"{label} #{i + 1}" if label in final else label
            final[label] = results.final[method]
            curves[label] = results.curves.get(method, {})
    return Results(final, curves)


def load_references(items) -> dict:
    """``env → (low, high)`` from ``ENV=LOW,HIGH`` strings and JSON or YAML files mapping each
    env to ``[low, high]`` (or ``{low: .., high: ..}``), e.g. ``["CartPole-v1=0,500"]``."""
    references = {}
    for item in items or ():
        if "=" not in item:
            if not Path(item).is_file():
                raise ValueError(f"--references: {item!r} is neither ENV=LOW,HIGH nor a JSON or "
                                 "YAML file")
            import yaml  # YAML is a superset of JSON

            table = yaml.safe_load(Path(item).read_text()) or {}
            if not isinstance(table, dict):
                raise ValueError(f"--references: {item} must map each env to [low, high]")
            pairs = [(str(k), v) for k, v in table.items()]
        else:
            env, _, bounds = item.partition("=")
            pairs = [(env.strip(), bounds.split(","))]
        for env, bounds in pairs:
            if isinstance(bounds, dict):
                bounds = [bounds.get("low"), bounds.get("high")]
            elif isinstance(bounds, str):
                bounds = bounds.split(",")
            try:
                low, high = (float(b) for b in bounds)
            except (TypeError, ValueError):
                raise ValueError(f"--references: {env}: {bounds!r} is not LOW,HIGH (two "
                                 "numbers)") from None
            if not low < high:
                raise ValueError(f"--references: {env}: low {low:g} must be below high {high:g}")
            references[env] = (low, high)
    return references
