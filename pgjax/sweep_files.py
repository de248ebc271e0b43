"""Files of a sweep: per-group long-format metrics, final returns and the done marker; what a
group's checkpoints must match; metric sinks; the lines a sweep prints about its spec and plan."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jax
import numpy as np

from pgjax.checkpoint import Checkpointer, CheckpointMismatch
from pgjax.distributed import broadcast
from pgjax.engine import final_returns


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
    finals = np.reshape(final_returns(flat), (len(g.configs), g.seeds))
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


def done_flags(groups, out: Path) -> list[bool]:
    """Per group, whether its ``group.json`` exists (every process follows process 0's view)."""
    flags = broadcast(np.array([(out / "groups" / g.id / "group.json").exists()
                                for g in groups]))
    return [bool(f) for f in np.asarray(flags)]


def sink_writer(group, sinks):
    """``on_chunk`` for :func:`pgjax.sweeps.run_group`: each run's metrics to every sink."""
    from pgjax.sinks import RunInfo

    def write(metrics):
        for c, hyper in enumerate(group.hyperparameters):
            for s in range(group.seeds):
                run = RunInfo(group.id, group.algo, group.env, s, hyper)
                for sink in sinks:
                    sink.write(run, {k: v[c, s] for k, v in metrics.items()})

    return write


def group_identity(group, chunk_length: int) -> dict:
    """What a group's checkpoint must match (besides one run's state shapes, which the engine
    adds): its configs, seeds and chunking (device count and padding do not matter)."""
    return {"group": group.id, "configs": {str(i): c.to_dict() for i, c in
                                           enumerate(group.configs)},
            "seeds": group.seeds, "seed": group.seed,
            "num_updates": group.configs[0].num_updates, "chunk_length": chunk_length}


def check_groups(groups, directories, chunk_lengths) -> None:
    """Before a sweep writes anything: the checkpoints of each group in ``directories`` (if
    any) are of that group, else :class:`CheckpointMismatch` names the first difference (in
    every process; the state's shapes are checked when the group starts)."""
    error = None
    if jax.process_index() == 0:
        for group, directory, length in zip(groups, directories, chunk_lengths):
            checkpoints = Checkpointer(directory)
            found = checkpoints.latest_meta()
            checkpoints.close()
            if found is None:
                continue
            saved = {k: v for k, v in found[1]["identity"].items() if k != "state"}
            try:
                checkpoints.check_identity({"identity": saved}, group_identity(group, length))
            except CheckpointMismatch as mismatch:
                error = mismatch
                break
    if int(broadcast(np.int32(error is not None))):
        raise error or CheckpointMismatch("resume: process 0 found checkpoints of a different "
                                          "run in the sweep directory; nothing was changed")


def describe_plan(groups, done, devices, out) -> str:
    """One line before a sweep starts: its runs, configurations × seeds, groups (one compile
    each), those already done, and the devices (and processes) they are split over."""
    runs = sum(len(g.configs) * g.seeds for g in groups)
    configs = sum(len(g.configs) for g in groups)
    seeds = sorted({g.seeds for g in groups})
    kinds: dict = {}
    for device in devices:
        kinds[device.platform] = kinds.get(device.platform, 0) + 1
    where = ", ".join(f"{n} × {kind}" for kind, n in kinds.items())
    processes = len({d.process_index for d in devices})
    finished = sum(bool(f) for f in done)
    return (f"sweep: {runs} runs ({configs} configuration{'s' * (configs != 1)} × "
            f"{'/'.join(map(str, seeds))} seed{'s' * (seeds != [1])}) in {len(groups)} "
            f"group{'s' * (len(groups) != 1)} (one compile each"
            + (f"; {finished} already done, skipped" if finished else "")
            + f") on {len(devices)} device{'s' * (len(devices) != 1)} ({where})"
            + (f" of {processes} processes" if processes > 1 else "") + f" -> {out}")


def seed_note(values: dict) -> str | None:
    """The note for a spec with ``seed`` but no ``seeds`` (``seed: 4`` meant as four seeds runs
    one seed per configuration)."""
    if values.get("seed") is None or values.get("seeds") is not None:
        return None
    return (f"pgjax: note: seed: {values['seed']} is the base seed of the runs' keys, not their "
            "number; each configuration runs 1 seed (`seeds: N` runs N)")
