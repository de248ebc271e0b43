"""``pgjax.train``: ``seeds`` runs of one config as a batch of the host engine
(:mod:`pgjax.engine`: the same ``init``/``update`` as ``make_train``, in jitted chunks over the
devices, with progress, checkpoints and fault checks), and the run files it writes.

Files written to ``out`` (the user-facing contract):

* ``metrics.csv`` — one row per seed per update: ``seed, update`` and every metric in
  :data:`pgjax.METRICS` then the algorithm's own (:func:`pgjax.trainer.metric_names`;
  ``episodic_return`` is NaN for updates in which no episode ended);
* ``summary.json`` — ``final_return`` (one value per seed), ``steps_per_second``,
  ``kl_bound_held`` (TRPO, FixPO: per seed, the share of updates that ended inside the trust
  region; a warning is printed when one did not),
  ``compile_seconds``, timings, devices, the full config and package versions;
* ``curve.png`` — episodic return against env steps, per seed and mean;
* ``policy.msgpack`` — each seed's trained policy (actor parameters and observation
  statistics), for ``pgjax eval DIR`` and :func:`pgjax.policy.load_policies`;
* ``checkpoints/`` — full-state checkpoints (:mod:`pgjax.checkpoint`) between chunks, for
  :func:`pgjax.resume` (``pgjax resume DIR``).

Numerical faults: every update reports ``nonfinite`` (:data:`pgjax.faults.FAULT_CHECKS`); the
engine checks it after each chunk and stops at the first non-finite update with
:class:`pgjax.faults.NumericalFault` (unless ``config.skip_nonfinite``), before that chunk is
checkpointed.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

from pgjax.checkpoint import CheckpointOptions, Checkpointer
from pgjax.checks import check_count, check_history, check_seed
from pgjax.config import Config, config_from_dict
from pgjax.engine import (CHECKPOINT_DIR, FINAL_WINDOW, Batch, RunCheckpoints,
                          checkpoint_options, chunk_length, final_returns, num_chunks_of,
                          run_batch)
from pgjax.policy import POLICY_FILE, save_policies
from pgjax.run_files import plot_curve, versions, write_metrics_csv
from pgjax.run_lock import run_directory_lock
from pgjax.trainer import metric_names
from pgjax.validation import validate

__all__ = ["RunResult", "check_arguments", "resume_run", "train", "write_run"]


@dataclasses.dataclass
class RunResult:
    config: Config
    final_state: object  #: the vmapped TrainState, leading axis = seeds
    metrics: dict  #: name → numpy array ``[seeds, num_updates]``
    summary: dict


def train(config: Config, seeds: int = 1, out=None, *, seed: int = 0, num_chunks: int = 20,
          progress: bool = True, devices=None, checkpoint: CheckpointOptions | bool | None = None,
          resume: bool = False, sinks=()) -> RunResult:
    """Train ``seeds`` independent runs of ``config`` and (optionally) write the run files.

    A one-configuration batch of the host engine (:func:`pgjax.engine.run_batch`): seeds are
    split across the devices (on CPU: one per core after :func:`pgjax.use_host_devices`, which
    the CLI calls; without it a one-line warning says so), padded to a multiple of their
    count, and the updates run in ``num_chunks`` jitted chunks of equal length, so the result
    equals ``jax.vmap(make_train(config))(keys)`` with
    ``keys = jax.random.split(jax.random.key(seed), seeds)``.

    Args:
      checkpoint: :class:`pgjax.checkpoint.CheckpointOptions` for ``out/checkpoints``; the
        default (None) is ``CheckpointOptions()`` — every 60 s and at the end, last 3 kept —
        when ``out`` is given, none otherwise; ``False`` turns checkpoints off.
      resume: continue from the newest good checkpoint in ``out/checkpoints`` (the config,
        seeds, seed and chunking must be the run's; the first difference is named). Without
        it, a directory that already holds checkpoints is refused.
      sinks: optional metric sinks (:mod:`pgjax.sinks`), ``"tensorboard"``
        (``out/tensorboard/<name of out>/<algo>-seed<N>``) and/or ``"wandb"`` (a W&B run per
        seed, grouped under the name of ``out``), written after every chunk; needs ``out``.

    Raises:
      NumericalFault: at the first update with a non-finite value (see
        :data:`pgjax.faults.FAULT_CHECKS`), unless ``config.skip_nonfinite``.
    """
    wall_start = time.perf_counter()
    check_arguments(config, seeds, seed, num_chunks, checkpoint)
    length = chunk_length(config.num_updates, num_chunks)
    identity = {"config": config.to_dict(), "seeds": seeds, "seed": seed,
                "num_updates": config.num_updates, "chunk_length": length}
    writers = _sinks(sinks, out)  # a missing package is named before anything is written
    with run_directory_lock(out, enabled=out is not None):  # one process per run directory
        checkpoints = _checkpoints(out, checkpoint, resume, identity, num_chunks)
        batch = Batch((config,), seeds, seed, name=f"{config.algo} {config.env_id}")
        try:
            ran = run_batch(batch, num_chunks=num_chunks, devices=devices, progress=progress,
                            checkpoints=checkpoints, stopped="training",
                            on_chunk=_sink_writer(config, seeds, Path(out).name, writers)
                            if writers else None,
                            describe_run=lambda run: f"(seed index {run}, --seed {seed})")
        finally:
            for sink in writers:
                sink.close()
        metrics = ran.metrics
        summary = {
            "algo": config.algo,
            "env": config.env_id,
            "seeds": seeds,
            "seed": seed,
            "final_return": final_returns(metrics),
            "final_return_window": FINAL_WINDOW,
            "env_steps_per_seed": config.num_updates * config.batch_size,
            "num_updates": config.num_updates,
            "steps_per_second": ran.steps_per_second,
            "resumed_at_update": ran.resumed_at,
            "checkpoints_written": ran.checkpoints_written,
            "nonfinite_updates": [int(n) for n in (metrics["nonfinite"] > 0).sum(axis=1)],
            "compile_seconds": ran.compile_seconds,
            "run_seconds": ran.run_seconds,
            "wall_seconds": time.perf_counter() - wall_start,
            "devices": [str(d) for d in ran.devices],
            "padded_runs": ran.padded_runs,
            "chunks": num_chunks_of(config.num_updates, ran.chunk_length),
            "config": config.to_dict(),
            "versions": versions(),
        }
        if "kl_bound_held" in metrics:
            held = metrics["kl_bound_held"].mean(-1)
            summary["kl_bound_held"] = held.tolist()
            if (held < 1).any():
                warnings.warn(f"{config.algo}: the trust region was exceeded after "
                              f"{int((metrics['kl_bound_held'] < 1).sum())} of "
                              f"{metrics['kl_bound_held'].size} updates (metric kl_bound_held)",
                              stacklevel=2)
        result = RunResult(config, ran.state, metrics, summary)
        if out is not None:
            write_run(result, Path(out))
        return result


def _sinks(names, out) -> list:
    """The metric sinks ``names`` under ``out`` (made before anything compiles, so a missing
    package is named at once)."""
    if not names:
        return []
    if out is None:
        raise ValueError("sinks: need out (the sinks write under the run directory)")
    from pgjax.sinks import make_sinks

    return make_sinks(list(names), out)


def _sink_writer(config: Config, seeds: int, group: str, sinks: list):
    """``on_chunk`` of a training run: each seed's chunk of metrics to every sink."""
    from pgjax.sinks import RunInfo

    def write(metrics):
        for s in range(seeds):
            run = RunInfo(group, config.algo, config.env_id, s, {})
            for sink in sinks:
                sink.write(run, {k: v[s] for k, v in metrics.items()})

    return write


def check_arguments(config, seeds, seed, num_chunks, checkpoint=None) -> None:
    """:func:`train`'s arguments, on the host, before anything is written: a valid config, the
    counts, the checkpoint options and a metrics history (``seeds × num_updates`` per metric)
    that fits in host memory."""
    if not isinstance(config, Config):
        raise ValueError(f"config: {config!r} is not a Config; allowed: a "
                         "pgjax.Config (pgjax.make_config(algo, env, ...))")
    validate(config)
    check_count("seeds", seeds)
    check_seed("seed", seed)
    check_count("num_chunks", num_chunks)
    if checkpoint is not False:
        checkpoint_options(checkpoint)
    check_history(seeds, config.num_updates, len(metric_names(config)),
                  name="seeds and total_timesteps")


def _checkpoints(out, options, resume: bool, identity: dict, num_chunks: int):
    """The run's checkpoints (None when off); refuses to start a new run over checkpoints."""
    if options is False or (options is None and out is None):
        if resume:
            raise ValueError("resume: needs out (the run directory) and checkpoints")
        return None
    if out is None:
        raise ValueError("checkpoint: needs out (checkpoints go to out/checkpoints)")
    options = checkpoint_options(options)
    directory = Path(out) / CHECKPOINT_DIR
    with Checkpointer(directory) as existing:
        held = existing.steps()
    if not resume and held:
        raise ValueError(f"out: {out} already holds checkpoints of a run; continue it with "
                         f"`pgjax resume {out}` or choose another directory")
    return RunCheckpoints(directory, options, identity, {"num_chunks": num_chunks},
                          required=resume)


def resume_run(out, *, progress: bool = True, devices=None,
               checkpoint: CheckpointOptions | None = None) -> RunResult:
    """Continue the run in ``out`` from its newest good checkpoint and write its run files.

    The config, seeds, seed, chunking and checkpoint options (unless ``checkpoint`` is given)
    are read from the checkpoint; on the same devices the result is bit-identical to the
    uninterrupted run's (parameters and every metric).
    """
    with Checkpointer(Path(out) / CHECKPOINT_DIR) as existing:
        found = existing.latest_meta()
    if found is None:
        raise ValueError(f"resume: {out} has no readable checkpoint in {CHECKPOINT_DIR}/ "
                         "(a directory written by `pgjax train`)")
    meta = found[1]
    identity = meta["identity"]
    config = config_from_dict(identity["config"])
    if checkpoint is None and meta.get("checkpoint"):
        checkpoint = CheckpointOptions(**meta["checkpoint"])
    return train(config, identity["seeds"], out, seed=identity["seed"],
                 num_chunks=meta["num_chunks"], progress=progress, devices=devices,
                 checkpoint=checkpoint, resume=True)


def write_run(result: RunResult, out: Path) -> None:
    """Write ``metrics.csv``, ``summary.json``, ``policy.msgpack`` and ``curve.png`` into
    ``out``."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    write_metrics_csv(result.metrics, out / "metrics.csv")
    with open(out / "summary.json", "w") as f:
        json.dump(result.summary, f, indent=2, default=str)
    save_policies(out / POLICY_FILE, result.config, result.final_state)
    plot_curve(result.metrics, out / "curve.png",
               f"{result.config.algo} on {result.config.env_id}")
