"""The host-side runner: the same ``init``/``update`` as ``make_train``, run as jitted chunks of
updates, vmapped over seeds and sharded across local devices, with live progress and run files.

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
  :func:`resume` (``pgjax resume DIR``).

Numerical faults: every update reports ``nonfinite`` (:data:`pgjax.trainer.FAULT_CHECKS`); the
runner checks it after each chunk and stops at the first non-finite update with
:class:`NumericalFault` (unless ``config.skip_nonfinite``), before that chunk is checkpointed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import platform
import time
import warnings
from importlib import metadata
from pathlib import Path

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from pgjax.checkpoint import CheckpointOptions, Checkpointer, shape_signature
from pgjax.config import Config, config_from_dict
from pgjax.devices import warn_if_one_core
from pgjax.policy import POLICY_FILE, save_policies
from pgjax.trainer import FAULT_CHECKS, make_trainer
from pgjax.validation import validate

#: Where a run directory keeps its checkpoints.
CHECKPOINT_DIR = "checkpoints"

#: Share of the last updates whose finished episodes make up ``final_return``.
FINAL_WINDOW = 0.05


@dataclasses.dataclass
class RunResult:
    config: Config
    final_state: object  #: the vmapped TrainState, leading axis = seeds
    metrics: dict  #: name → numpy array ``[seeds, num_updates]``
    summary: dict


def chunk_length(num_updates: int, num_chunks: int) -> int:
    """The divisor of ``num_updates`` closest to ``num_updates / num_chunks`` (so every chunk
    has the same length and compiles once)."""
    target = num_updates / max(1, num_chunks)
    divisors = [d for d in range(1, num_updates + 1) if num_updates % d == 0]
    return min(divisors, key=lambda d: (abs(math.log(d / target)), d))


def final_returns(metrics: dict, window: float = FINAL_WINDOW) -> list[float]:
    """Per seed, the mean return of the episodes that ended in the last ``window`` share of
    updates (at least one update); NaN for a seed with no finished episode there."""
    count = metrics["episodes"]
    last = max(1, int(round(count.shape[-1] * window)))
    returns = np.nan_to_num(metrics["episodic_return"][:, -last:])
    total = (returns * count[:, -last:]).sum(-1)
    n = count[:, -last:].sum(-1)
    return [float(t / c) if c > 0 else float("nan") for t, c in zip(total, n)]


def _seed_devices(seeds: int, devices):
    """The most local devices (≤ available) that divide the seeds evenly."""
    devices = list(devices if devices is not None else jax.local_devices())
    count = max(d for d in range(1, len(devices) + 1) if seeds % d == 0)
    return devices[:count]


def _seed_sharding(devices) -> NamedSharding:
    """Split a leading seed axis across ``devices``."""
    return NamedSharding(jax.sharding.Mesh(np.array(devices), ("seed",)), PartitionSpec("seed"))


def _over_seeds(fn, devices):
    """``fn`` mapped over a leading seed axis.

    One device: ``vmap``. Several: ``shard_map``, each device running its share of the seeds —
    vmapped on accelerators, one after another (``lax.map``) on CPU host devices, where one
    program uses about one core anyway and vmapped seeds on several host devices deadlocked XLA
    (jax 0.10.2, measured).
    """
    if len(devices) == 1:
        return jax.vmap(fn)
    local = jax.vmap(fn) if devices[0].platform != "cpu" else (lambda x: jax.lax.map(fn, x))
    sharding = _seed_sharding(devices)
    return jax.shard_map(local, mesh=sharding.mesh, in_specs=sharding.spec,
                         out_specs=sharding.spec, check_vma=False)


class NumericalFault(FloatingPointError):
    """A non-finite reward, observation, loss, gradient or parameter stopped the run."""


def first_fault(metrics: dict) -> tuple[int, int, str] | None:
    """``(update offset, run index, quantity)`` of the first update of a chunk's metrics
    (``[runs, length]``) whose ``nonfinite`` code is set, or None when all are finite."""
    code = np.asarray(metrics["nonfinite"])
    if not code.any():
        return None
    update = int(np.argmax(code.any(axis=0)))
    run = int(np.argmax(code[:, update] > 0))
    return update, run, FAULT_CHECKS[int(code[run, update]) - 1]


def kept_checkpoint(checkpoints) -> str:
    """What a fault message says is kept: the newest finite checkpoint (after waiting for a
    background save), or "no checkpoint"."""
    if checkpoints is None:
        return "no checkpoint"
    checkpoints.wait()
    steps = checkpoints.steps()
    return (f"last finite checkpoint: update {steps[-1]} in {checkpoints.directory}" if steps
            else "no checkpoint")


def check_faults(metrics: dict, first_update: int, seed: int, checkpoints) -> None:
    """Raise :class:`NumericalFault` for the first update of a chunk's metrics (``[seeds,
    length]``, the first being update ``first_update``) whose ``nonfinite`` code is set."""
    fault = first_fault(metrics)
    if fault is None:
        return
    update, seed_index, what = fault
    raise NumericalFault(f"numerical fault: {what} is NaN or infinite at update "
                         f"{first_update + update} (seed index {seed_index}, --seed {seed}); "
                         f"training stopped, {kept_checkpoint(checkpoints)}")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("pgjax", "jax", "jaxlib", "flax", "optax", "chex", "gymnax", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def train(config: Config, seeds: int = 1, out=None, *, seed: int = 0, num_chunks: int = 20,
          progress: bool = True, devices=None, checkpoint: CheckpointOptions | bool | None = None,
          resume: bool = False) -> RunResult:
    """Train ``seeds`` independent runs of ``config`` and (optionally) write the run files.

    Seeds are vmapped inside one program and sharded across local devices (on CPU: one per
    core after :func:`pgjax.use_host_devices`, which the CLI calls; without it a one-line
    warning says so). The updates run in ``num_chunks``
    jitted chunks of equal length, so the result equals ``jax.vmap(make_train(config))(keys)``
    with ``keys = jax.random.split(jax.random.key(seed), seeds)``.

    Args:
      checkpoint: :class:`pgjax.checkpoint.CheckpointOptions` for ``out/checkpoints``; the
        default (None) is ``CheckpointOptions()`` — every 60 s and at the end, last 3 kept —
        when ``out`` is given, none otherwise; ``False`` turns checkpoints off.
      resume: continue from the newest good checkpoint in ``out/checkpoints`` (the config,
        seeds, seed and chunking must be the run's; the first difference is named). Without
        it, a directory that already holds checkpoints is refused.

    Raises:
      NumericalFault: at the first update with a non-finite value (see
        :data:`pgjax.trainer.FAULT_CHECKS`), unless ``config.skip_nonfinite``.
    """
    wall_start = time.perf_counter()
    validate(config)
    trainer = make_trainer(config)
    if devices is None:
        warn_if_one_core(seeds)
    devices = _seed_devices(seeds, devices)
    length = chunk_length(trainer.num_updates, num_chunks)
    checkpoints = _checkpointer(out, checkpoint, resume)

    def run_chunk(state):
        return jax.lax.scan(lambda s, _: trainer.update(s), state, None, length=length)

    keys = jax.random.split(jax.random.key(seed), seeds)
    placement = _seed_sharding(devices) if len(devices) > 1 else devices[0]
    keys = jax.device_put(keys, placement)
    init = jax.jit(_over_seeds(trainer.init, devices))
    identity = {"config": config.to_dict(), "seeds": seeds, "seed": seed,
                "num_updates": trainer.num_updates, "chunk_length": length,
                "state": shape_signature(jax.eval_shape(init, keys))}
    start = time.perf_counter()
    if resume:
        snapshot = checkpoints.restore_latest(jax.eval_shape(init, keys), identity)
        if snapshot is None:
            raise ValueError(f"resume: no readable checkpoint in {checkpoints.directory}")
        state = jax.device_put(snapshot.state, placement)
        done, history = snapshot.step, snapshot.history
    else:
        state = init.lower(keys).compile()(keys)
        done, history = 0, None
    chunk = jax.jit(_over_seeds(run_chunk, devices), donate_argnums=0).lower(state).compile()
    compile_seconds = time.perf_counter() - start

    total_steps = seeds * trainer.num_updates * config.batch_size
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=seeds * done * config.batch_size, unit="step",
                   unit_scale=True, dynamic_ncols=True,
                   desc=f"{config.algo} {config.env_id} ×{seeds}")
    meta = {"identity": identity, "num_chunks": num_chunks,
            "checkpoint": None if checkpoints is None else
            dataclasses.asdict(checkpoints.options)}
    run_start = time.perf_counter()
    try:
        state, chunks = _run_chunks(chunk, state, done, length, trainer.num_updates, history,
                                    checkpoints, meta, bar, seed, config)
        jax.block_until_ready(state)
    finally:
        if checkpoints is not None:  # a background save finishes even when a fault stopped us
            checkpoints.wait()
            checkpoints.close()
        if bar is not None:
            bar.close()
    run_seconds = time.perf_counter() - run_start

    metrics = _concatenate(chunks, trainer.metrics)
    ran_updates = trainer.num_updates - (0 if history is None else history["env_steps"].shape[1])
    summary = {
        "algo": config.algo,
        "env": config.env_id,
        "seeds": seeds,
        "seed": seed,
        "final_return": final_returns(metrics),
        "final_return_window": FINAL_WINDOW,
        "env_steps_per_seed": trainer.num_updates * config.batch_size,
        "num_updates": trainer.num_updates,
        "steps_per_second": seeds * ran_updates * config.batch_size / run_seconds,
        "resumed_at_update": None if history is None else trainer.num_updates - ran_updates,
        "checkpoints_written": 0 if checkpoints is None else checkpoints.saved,
        "nonfinite_updates": [int(n) for n in (metrics["nonfinite"] > 0).sum(axis=1)],
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
        "wall_seconds": time.perf_counter() - wall_start,
        "devices": [str(d) for d in devices],
        "chunks": trainer.num_updates // length,
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
    result = RunResult(config, state, metrics, summary)
    if out is not None:
        write_run(result, Path(out))
    return result


def _run_chunks(chunk, state, done, length, num_updates, history, checkpoints, meta, bar,
                seed, config):
    """The host loop: chunks from update ``done`` on, fault checks, checkpoints, progress."""
    chunks = [history] if history is not None else []
    if checkpoints is not None:
        checkpoints.start(done)
    while done < num_updates:
        state, metrics = chunk(state)
        metrics = jax.device_get(metrics)
        if not config.skip_nonfinite:
            check_faults(metrics, done + 1, seed, checkpoints)
        chunks.append(metrics)
        done += length
        if checkpoints is not None and checkpoints.due(done, done == num_updates):
            chunks = [_concatenate(chunks, list(chunks[-1]))]
            checkpoints.save(done, state, chunks[0], meta)
        if bar is not None:
            bar.update(metrics["env_steps"].shape[0] * length * config.batch_size)
            latest = np.nanmean(metrics["episodic_return"][:, -1]) if np.isfinite(
                metrics["episodic_return"][:, -1]).any() else float("nan")
            bar.set_postfix_str(f"return {latest:.1f}")
    return state, chunks


def _concatenate(chunks: list[dict], names) -> dict:
    """The chunks' metrics joined along updates, in the order of ``names`` (jitted outputs
    come back with sorted keys)."""
    return {k: np.concatenate([np.asarray(c[k]) for c in chunks], axis=1) for k in names}


def _checkpointer(out, options, resume: bool) -> Checkpointer | None:
    """The run's checkpointer (None when off); refuses to start a new run over checkpoints."""
    if options is False or (options is None and out is None):
        if resume:
            raise ValueError("resume: needs out (the run directory) and checkpoints")
        return None
    if out is None:
        raise ValueError("checkpoint: needs out (checkpoints go to out/checkpoints)")
    options = CheckpointOptions() if options is None or options is True else options
    checkpoints = Checkpointer(Path(out) / CHECKPOINT_DIR, options)
    if not resume and checkpoints.steps():
        raise ValueError(f"out: {out} already holds checkpoints of a run; continue it with "
                         f"`pgjax resume {out}` or choose another directory")
    return checkpoints


def resume(out, *, progress: bool = True, devices=None,
           checkpoint: CheckpointOptions | None = None) -> RunResult:
    """Continue the run in ``out`` from its newest good checkpoint and write its run files.

    The config, seeds, seed, chunking and checkpoint options (unless ``checkpoint`` is given)
    are read from the checkpoint; on the same devices the result is bit-identical to the
    uninterrupted run's (parameters and every metric).
    """
    found = Checkpointer(Path(out) / CHECKPOINT_DIR).latest_meta()
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
    """Write ``metrics.csv``, ``summary.json`` and ``curve.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = result.metrics
    seeds, updates = metrics["env_steps"].shape
    names = list(metrics)  # METRICS, then the algorithm's own
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seed", "update", *names])
        for s in range(seeds):
            for u in range(updates):
                writer.writerow([s, u + 1, *(_fmt(metrics[k][s, u]) for k in names)])
    with open(out / "summary.json", "w") as f:
        json.dump(result.summary, f, indent=2, default=str)
    save_policies(out / POLICY_FILE, result.config, result.final_state)
    plot_curve(metrics, out / "curve.png", f"{result.config.algo} on {result.config.env_id}")


def _fmt(x):
    x = x.item()
    return x if isinstance(x, int) else f"{x:.6g}"


def plot_curve(metrics: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = metrics["env_steps"][0]
    returns = metrics["episodic_return"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for s, r in enumerate(returns):
        ok = np.isfinite(r)
        ax.plot(steps[ok], r[ok], lw=0.8, alpha=0.5, label=f"seed {s}" if len(returns) <= 8
                else None)
    with warnings.catch_warnings():  # an update where no seed finished an episode: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(returns, axis=0)
    ok = np.isfinite(mean)
    ax.plot(steps[ok], mean[ok], color="black", lw=2, label="mean")
    ax.set(xlabel="env steps", ylabel="episodic return", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
