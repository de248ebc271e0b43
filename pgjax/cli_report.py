"""What the ``pgjax`` command prints after a run: the files a training run wrote, and a sweep's
final returns per configuration (mean and IQM over seeds)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from pgjax.analysis import iqm

__all__ = ["final_table", "written"]

#: A training run's files in the order ``pgjax train`` reports them (:mod:`pgjax.runner`).
RUN_FILES = ("metrics.csv", "summary.json", "curve.png", "policy.msgpack")


def written(out) -> str:
    """``"DIR/: metrics.csv, summary.json, ..."``: every file and folder in the run directory
    ``out``, the run files first, a folder with a slash (``checkpoints/`` with its count)."""
    out = Path(out)
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) \
        if out.is_dir() else []
    ordered = [n for n in RUN_FILES if n in names] + [n for n in names if n not in RUN_FILES]
    items = []
    for name in ordered:
        path = out / name
        if name == "checkpoints" and path.is_dir():
            count = sum(1 for p in path.iterdir() if p.is_dir() and p.name.isdigit())
            items.append(f"checkpoints/ ({count} checkpoint{'s' * (count != 1)})")
        else:
            items.append(name + "/" * path.is_dir())
    return f"{out}/: " + ", ".join(items)


def final_table(final_csv) -> str:
    """A sweep's ``final.csv`` as one line per configuration (algorithm, env, swept values):
    seeds, mean, IQM, min and max final return (NaN runs — no episode ended — left out and
    counted)."""
    with open(final_csv) as f:
        reader = csv.DictReader(f)
        swept = [k for k in reader.fieldnames or ()
                 if k not in ("group", "algo", "env", "seed", "final_return")]
        rows = list(reader)
    table: dict = {}
    for row in rows:
        env = row["env"][len("gymnax/"):] if row["env"].startswith("gymnax/") else row["env"]
        label = " ".join([row["algo"], env] + [f"{k}={row[k]}" for k in swept if row[k] != ""])
        table.setdefault(label, []).append(float(row["final_return"]))
    width = max([len("configuration")] + [len(k) for k in table])
    lines = [f"{'configuration':<{width}}  {'seeds':>5}  {'mean':>9}  {'IQM':>9}  "
             f"{'min':>9}  {'max':>9}"]
    for label, values in table.items():
        finite = [v for v in values if not math.isnan(v)]
        stats = ([sum(finite) / len(finite), float(iqm(finite)), min(finite), max(finite)]
                 if finite else [math.nan] * 4)
        nan = f"  ({len(values) - len(finite)} nan)" if len(finite) < len(values) else ""
        lines.append(f"{label:<{width}}  {len(values):>5}  "
                     + "  ".join(f"{v:>9.1f}" for v in stats) + nan)
    return "\n".join(lines)
