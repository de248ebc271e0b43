"""Files of a sweep: per-group long-format metrics, final returns and the done marker; metric
sinks."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np

from pgjax import runner
from pgjax._sweep_checkpoints import broadcast


def _rows(result, swept, metric_names):
    g, m = result.group, result.metrics
    steps = m["env_steps"]
    metric_names = [n for n in (metric_names or m) if n != "env_steps" and n in m]
    for c, hyper in enumerate(g.hyperparameters):
        head = [g.algo, g.env]
        values = [hyper.get(k, "") for k in swept]
        for s in range(g.seeds):
            for u in range(steps.shape[-1]):
                lead = [g.id, *head, s, *values, u + 1, int(steps[c, s, u])]
                for name in metric_names:
                    yield [*lead, name, f"{float(m[name][c, s, u]):.6g}"]


def write_group(result, directory: Path, swept: list, metric_names) -> None:
    """A finished group's ``metrics.csv`` and ``final.csv``, then ``group.json`` (the done
    marker, written last and atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "algo", "env", "seed", *swept, "update", "env_steps",
                         "metric", "value"])
        writer.writerows(_rows(result, swept, metric_names))
    g = result.group
    flat = {k: v.reshape(-1, v.shape[-1]) for k, v in result.metrics.items()}
    finals = np.reshape(runner.final_returns(flat), (len(g.configs), g.seeds))
    with open(directory / "final.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "algo", "env", "seed", *swept, "final_return"])
        for c, hyper in enumerate(g.hyperparameters):
            for s in range(g.seeds):
                writer.writerow([g.id, g.algo, g.env, s, *(hyper.get(k, "") for k in swept),
                                 f"{finals[c, s]:.6g}"])
    tmp = directory / "group.json.tmp"  # written last: its presence marks the group done
    tmp.write_text(json.dumps(result.record, indent=2, default=str))
    tmp.replace(directory / "group.json")


def join_chunks(chunks: list[dict]) -> dict:
    """Chunks of host metrics (name → ``[runs, length]``) joined along updates."""
    return {k: np.concatenate([c[k] for c in chunks], axis=1) for k in chunks[-1]}


def concatenate(paths, target: Path) -> None:
    """The CSV files ``paths`` as one file (one header)."""
    with open(target, "w") as out:
        for i, path in enumerate(paths):
            with open(path) as f:
                header = f.readline()
                if i == 0:
                    out.write(header)
                out.writelines(f)


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


def done_flags(groups, out: Path) -> list[bool]:
    """Per group, whether its ``group.json`` exists (every process follows process 0's view)."""
    flags = broadcast(np.array([(out / "groups" / g.id / "group.json").exists()
                                for g in groups]))
    return [bool(f) for f in np.asarray(flags)]


def sink_writer(group, sinks):
    """``on_chunk`` for :func:`pgjax.sweep.run_group`: each run's metrics to every sink."""
    from pgjax.sinks import RunInfo

    def write(metrics):
        for c, hyper in enumerate(group.hyperparameters):
            for s in range(group.seeds):
                run = RunInfo(group.id, group.algo, group.env, s, hyper)
                for sink in sinks:
                    sink.write(run, {k: v[c, s] for k, v in metrics.items()})

    return write
