"""Sweeps: algorithms × environments × seeds × hyperparameter grids, one compiled program per
group of runs that share a program shape, sharded over every device (and host).

A *spec* (a YAML file, a dict, or keyword arguments) names the runs::

    algos: [ppo, spo]              # or {ppo: {overrides}, spo: {...}}
    envs: [CartPole-v1]
    seeds: 4                       # seeds 0..3 of base seed `seed` (keys as `pgjax train`)
    grid: {learning_rate: [1e-4, 3e-4, 1e-3]}   # cartesian product
    list: [{gamma: 0.99, gae_lambda: 0.95}, {gamma: 0.999, gae_lambda: 0.9}]  # explicit points
    set: {total_timesteps: 500000} # fixed overrides of every run
    num_chunks: 10                 # jitted chunks per group (progress, checkpoints)
    checkpoint: {every_seconds: 60, every_updates: null, keep: 3}   # or false (CheckpointOptions)

Every (algo, env, point) becomes a validated :class:`pgjax.Config`. Configs whose static
(shape) fields agree form a *group*: one ``init`` and one chunk program, compiled once, over a
state with a leading (configuration × seed) axis, split across ``jax.devices()`` — all local
devices, and every process's devices under ``jax.distributed``. A static hyperparameter in the
grid (``num_envs``, ``num_steps``, …) therefore splits groups.

Files in ``out``: ``spec.json`` (first; ``pgjax resume OUT`` reads it), per group
``groups/<id>/{metrics.csv,final.csv,group.json}`` (``group.json`` is written last and marks the
group done: re-running the spec skips it) and ``checkpoints/`` (:class:`pgjax.engine.RunCheckpoints`:
an unfinished group continues bit-identically from the newest good one; a done group keeps only
the final one), and over all groups
``results.csv`` (long format: ``group, algo, env, seed, <swept hyperparameters>, update,
env_steps, metric, value``), ``final.csv`` (one final return per run) and ``manifest.json``
(spec, versions, devices, processes, git revision, compile and run seconds per group).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import sys
import time
from pathlib import Path

import jax

from pgjax.checks import check_history, check_spec_values, read_json, read_spec_file
from pgjax.config import make_config
from pgjax.engine import (CHECKPOINT_DIR, Batch, RunCheckpoints, checkpoint_options,
                          chunk_length, num_chunks_of, run_batch)
from pgjax.run_files import concatenate_csv, git_revision, versions
from pgjax.run_lock import run_directory_lock
from pgjax.sweep_files import (check_groups, describe_plan, done_flags, group_identity,
                               seed_note, sink_writer, write_group)
from pgjax.trainer import metric_names

__all__ = ["Group", "GroupResult", "SweepResult", "SweepSpec", "check_outputs", "check_sweep",
           "is_sweep_dir", "load_spec", "make_groups", "resume_sweep", "run_group", "sweep"]

#: The spec of a sweep, written into ``out`` when it starts (``pgjax resume OUT`` reads it).
SPEC_FILE = "spec.json"


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """What to run. ``algos`` maps each algorithm to its own overrides."""

    algos: dict
    envs: tuple
    seeds: int = 1
    seed: int = 0
    grid: dict = dataclasses.field(default_factory=dict)
    list: tuple = ()
    set: dict = dataclasses.field(default_factory=dict)
    num_chunks: int = 10
    #: metrics in results.csv; () = every metric the algorithm reports (METRICS, then its own)
    metrics: tuple = ()
    sinks: tuple = ()  #: optional metric sinks, ``"tensorboard"`` / ``"wandb"`` (pgjax.sinks)
    #: CheckpointOptions fields (dict) for each group's checkpoints; None: defaults; False: off
    checkpoint: dict | bool | None = None

    def points(self) -> list[dict]:
        """Hyperparameter points: each ``list`` entry × the cartesian product of ``grid``."""
        names = list(self.grid)
        product = [dict(zip(names, values))
                   for values in itertools.product(*(self.grid[n] for n in names))]
        return [{**entry, **point} for entry in (self.list or ({},)) for point in product]

    def swept(self) -> list[str]:
        """The hyperparameter names that vary (columns of the results)."""
        return list(dict.fromkeys([k for e in self.list for k in e] + list(self.grid)))

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


def load_spec(spec=None, **overrides) -> SweepSpec:
    """A :class:`SweepSpec` from a YAML path, a dict or a spec, with ``overrides`` on top;
    every key checked (:func:`pgjax.checks.check_spec_values`), one line naming the first bad
    one."""
    if isinstance(spec, SweepSpec):
        spec = spec.to_dict()
    elif isinstance(spec, (str, os.PathLike)):
        spec = read_spec_file(spec)
    elif spec is not None and not isinstance(spec, dict):
        raise ValueError(f"sweep: spec {spec!r} is not a spec; allowed: a YAML "
                         "path, a mapping of spec keys or a SweepSpec")
    merged = {**(spec or {}), **{k: v for k, v in overrides.items() if v is not None}}
    values = check_spec_values(merged)  # a refusal is the one line printed
    if seed_note(merged):  # `seed: 4` meant as `seeds: 4`
        print(seed_note(merged), file=sys.stderr)
    checkpoint = merged.get("checkpoint")
    options = checkpoint_options(checkpoint, "sweep: checkpoint")  # checked before anything runs
    if checkpoint is not None and checkpoint is not False:
        checkpoint = dataclasses.asdict(options)
    return SweepSpec(checkpoint=checkpoint, **values)


@dataclasses.dataclass(frozen=True)
class Group:
    """Runs sharing one program shape: ``configs[i]`` × seeds ``0..seeds-1``."""

    id: str
    algo: str
    env: str
    configs: tuple  #: validated configs, identical in every static field
    hyperparameters: tuple  #: per config, the swept values (``{name: value}``)
    seeds: int
    seed: int


def make_groups(spec: SweepSpec) -> list[Group]:
    """Validate every run on the host and group them by program shape, in spec order."""
    buckets: dict = {}
    swept = spec.swept()
    for algo, algo_overrides in spec.algos.items():
        for env in spec.envs:
            for point in spec.points():
                config = make_config(algo, env, **{**spec.set, **algo_overrides, **point})
                values = config.to_dict()
                shape = (algo, config.env_id, jax.tree.structure(config))
                entry = buckets.setdefault(shape, ([], []))
                entry[0].append(config)
                entry[1].append({k: values[k] for k in swept})
    groups = []
    for (algo, env, _), (configs, hypers) in buckets.items():
        described = json.dumps({"configs": [c.to_dict() for c in configs], "seeds": spec.seeds,
                                "seed": spec.seed}, sort_keys=True, default=str)
        digest = hashlib.sha1(described.encode()).hexdigest()[:10]
        gid = f"{algo}-{env.split('/')[-1]}-{digest}"
        groups.append(Group(gid, algo, env, tuple(configs), tuple(hypers), spec.seeds,
                            spec.seed))
    return groups


@dataclasses.dataclass
class GroupResult:
    group: Group
    metrics: dict | None  #: name → ``[configs, seeds, num_updates]`` (None when resumed)
    record: dict  #: what ``group.json`` holds (timings, devices, status)


def run_group(group: Group, *, num_chunks: int = 10, devices=None, progress: bool = False,
              on_chunk=None, checkpoint=None, directory=None) -> GroupResult:
    """Train every (configuration, seed) of ``group`` in one compiled program: a batch of the
    host engine (:func:`pgjax.engine.run_batch`) over ``devices`` (default: ``jax.devices()``,
    every process's). Seed ``s`` uses the key ``pgjax train`` gives seed ``s``, so every run
    equals ``make_train(config)(key)``. ``on_chunk(metrics)``, if given, receives each chunk's
    host metrics (name → ``[configs, seeds, chunk_length]``; after a resume, the chunks run
    after it).

    With ``checkpoint`` (:class:`pgjax.checkpoint.CheckpointOptions`), the state and metrics
    so far are checkpointed into ``directory`` between chunks, and a group that finds
    checkpoints there continues from the newest good one; when the group is done only the
    final checkpoint is kept. The result is bit-identical to an uninterrupted run on CPU.
    """
    start_wall = time.perf_counter()
    length = chunk_length(group.configs[0].num_updates, num_chunks)
    saves = None if checkpoint is None else RunCheckpoints(
        directory, checkpoint, group_identity(group, length), {"num_chunks": num_chunks})
    shape = (len(group.configs), group.seeds)
    forward = None if on_chunk is None else (
        lambda metrics: on_chunk({k: v.reshape(*shape, -1) for k, v in metrics.items()}))
    batch = Batch(group.configs, group.seeds, group.seed, name=group.id)
    ran = run_batch(batch, num_chunks=num_chunks, devices=devices, progress=progress,
                    on_chunk=forward, checkpoints=saves, stopped="the sweep",
                    describe_run=lambda run: _describe_run(group, run))
    if saves is not None:  # the final checkpoint is complete before group.json is written
        saves.keep_newest_only()
        saves.close()
    num_updates = batch.num_updates
    metrics = {k: v.reshape(*shape, num_updates) for k, v in ran.metrics.items()}
    steps_per_update = group.configs[0].batch_size
    record = {
        "id": group.id, "algo": group.algo, "env": group.env,
        "configs": len(group.configs), "seeds": group.seeds, "runs": batch.runs,
        "padded_runs": ran.padded_runs, "hyperparameters": list(group.hyperparameters),
        "num_updates": num_updates, "env_steps_per_run": num_updates * steps_per_update,
        "compile_seconds": ran.compile_seconds, "run_seconds": ran.run_seconds,
        "steps_per_second": ran.steps_per_second,
        "wall_seconds": time.perf_counter() - start_wall,
        "chunks": num_chunks_of(num_updates, ran.chunk_length), "devices": [str(d) for d in ran.devices],
        "processes": jax.process_count(), "config": group.configs[0].to_dict(),
        "resumed_at_update": ran.resumed_at,
        "checkpoints_written": ran.checkpoints_written,
        "status": "ran" if ran.resumed_at is None else "continued",
    }
    return GroupResult(group, metrics, record)


def _describe_run(group: Group, run: int) -> str:
    """How a fault message names run ``run`` of ``group`` (runs are config-major)."""
    point = group.hyperparameters[run // group.seeds]
    where = ", ".join([f"{k}={v}" for k, v in point.items()] + [f"seed {run % group.seeds}"])
    return f"of group {group.id} ({group.algo} on {group.env}, {where})"


def check_sweep(spec=None, **overrides) -> tuple[SweepSpec, list[Group]]:
    """The spec (:func:`load_spec`) and its groups (:func:`make_groups`), every run and output
    checked on the host (:func:`check_outputs`); nothing is compiled or written."""
    spec = load_spec(spec, **overrides)
    groups = make_groups(spec)
    check_outputs(spec, groups)
    return spec, groups


def check_outputs(spec: SweepSpec, groups: list[Group]) -> None:
    """Refuse, before anything runs, ``metrics`` that no group reports (results.csv would hold
    only its header) and a group whose metrics history does not fit in host memory."""
    reported = {n for g in groups for n in metric_names(g.configs[0])} - {"env_steps"}
    unknown = [m for m in spec.metrics if m not in reported]
    if unknown:
        raise ValueError(f"metrics: {unknown[0]!r} is not reported by "
                         f"{', '.join(spec.algos)}; allowed: {', '.join(sorted(reported))}")
    for g in groups:
        check_history(len(g.configs) * g.seeds, g.configs[0].num_updates,
                      len(metric_names(g.configs[0])), name="seeds")


@dataclasses.dataclass
class SweepResult:
    out: Path
    manifest: dict
    groups: list  #: :class:`GroupResult` per group (``metrics`` None for resumed ones)


def sweep(spec=None, out="sweeps/sweep", *, devices=None, progress: bool = True,
          **overrides) -> SweepResult:
    """Run a sweep (see the module docstring for the spec) and write its files into ``out``.

    Groups already done in ``out`` (their ``group.json`` exists) are skipped and an unfinished
    group continues from its newest good checkpoint (spec key ``checkpoint``), so re-running an
    interrupted sweep (or :func:`resume_sweep`) finishes it. Under ``jax.distributed`` every
    process calls ``sweep`` with the same spec; process 0 writes the files.

    Example:
      >>> import pgjax
      >>> result = pgjax.sweep(algos=["ppo"], envs=["CartPole-v1"], seeds=2,
      ...                      grid={"learning_rate": [3e-4, 1e-3]},
      ...                      set={"total_timesteps": 4096}, out=getfixture("tmp_path"),
      ...                      progress=False)  # doctest: +SKIP
    """
    wall = time.perf_counter()
    spec, groups = check_sweep(spec, **overrides)
    out = Path(out)
    writer = jax.process_index() == 0
    with run_directory_lock(out, enabled=writer):  # one process per sweep directory
        done = done_flags(groups, out)
        if progress and writer:
            print(describe_plan(groups, done, devices or jax.devices(), out), flush=True)
        options = checkpoint_options(spec.checkpoint, "sweep: checkpoint")
        todo = [g for g, finished in zip(groups, done) if not finished and options is not None]
        check_groups(todo, [out / "groups" / g.id / CHECKPOINT_DIR for g in todo],
                     [chunk_length(g.configs[0].num_updates, spec.num_chunks) for g in todo])
        if writer:
            out.mkdir(parents=True, exist_ok=True)
            (out / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, default=str))
        results = []
        sinks = []
        if writer and spec.sinks:
            from pgjax.sinks import make_sinks

            sinks = make_sinks(spec.sinks, out)
        for group, finished in zip(groups, done):
            directory = out / "groups" / group.id
            if finished:
                record = {**json.loads((directory / "group.json").read_text()), "status": "resumed"}
                results.append(GroupResult(group, None, record))
                continue
            result = run_group(group, num_chunks=spec.num_chunks, devices=devices,
                               progress=progress and writer,
                               on_chunk=sink_writer(group, sinks) if sinks else None,
                               checkpoint=options, directory=directory / CHECKPOINT_DIR)
            if writer:
                write_group(result, directory, spec.swept(), spec.metrics)
            results.append(result)
        for sink in sinks:
            sink.close()
        manifest = {
            "spec": spec.to_dict(), "versions": versions(), "git_revision": git_revision(),
            "devices": [str(d) for d in jax.devices()], "processes": jax.process_count(),
            "groups": [r.record for r in results], "wall_seconds": time.perf_counter() - wall,
        }
        if writer:
            dirs = [out / "groups" / g.id for g in groups]
            concatenate_csv([d / "metrics.csv" for d in dirs], out / "results.csv")
            concatenate_csv([d / "final.csv" for d in dirs], out / "final.csv")
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        return SweepResult(out, manifest, results)


def is_sweep_dir(out) -> bool:
    """Whether ``out`` was written by :func:`sweep` (it holds the sweep's spec file)."""
    return (Path(out) / SPEC_FILE).is_file()


def resume_sweep(out, *, checkpoint=None, **kwargs) -> SweepResult:
    """Continue the sweep in ``out`` with the spec it was started with (``pgjax resume OUT``):
    finished groups are skipped, an unfinished one continues from its newest good checkpoint.
    ``checkpoint`` (None: the sweep's own options) and ``kwargs`` go to :func:`sweep`."""
    if not is_sweep_dir(out):
        raise ValueError(f"resume: {out} has no {SPEC_FILE} (a directory written by "
                         "`pgjax sweep`)")
    spec = read_json(Path(out) / SPEC_FILE, "resume")
    if checkpoint is not None:
        spec["checkpoint"] = checkpoint
    return sweep(spec, out=out, **kwargs)
