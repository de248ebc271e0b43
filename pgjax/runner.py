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
  statistics), for ``pgjax eval DIR`` and :func:`pgjax.policy.load_policies`.
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

from pgjax.config import Config
from pgjax.policy import POLICY_FILE, save_policies
from pgjax.trainer import make_trainer

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


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("pgjax", "jax", "jaxlib", "flax", "optax", "chex", "gymnax", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def train(config: Config, seeds: int = 1, out=None, *, seed: int = 0, num_chunks: int = 20,
          progress: bool = True, devices=None) -> RunResult:
    """Train ``seeds`` independent runs of ``config`` and (optionally) write the run files.

    Seeds are vmapped inside one program and sharded across local devices (on CPU pgjax asks
    XLA for one host device per core, see :mod:`pgjax._xla`). The updates run in ``num_chunks``
    jitted chunks of equal length, so the result equals ``jax.vmap(make_train(config))(keys)``
    with ``keys = jax.random.split(jax.random.key(seed), seeds)``.
    """
    wall_start = time.perf_counter()
    trainer = make_trainer(config)
    devices = _seed_devices(seeds, devices)
    length = chunk_length(trainer.num_updates, num_chunks)

    def run_chunk(state):
        return jax.lax.scan(lambda s, _: trainer.update(s), state, None, length=length)

    keys = jax.random.split(jax.random.key(seed), seeds)
    keys = jax.device_put(keys, _seed_sharding(devices) if len(devices) > 1 else devices[0])
    start = time.perf_counter()
    init = jax.jit(_over_seeds(trainer.init, devices)).lower(keys).compile()
    compile_seconds = time.perf_counter() - start
    state = init(keys)
    start = time.perf_counter()
    chunk = jax.jit(_over_seeds(run_chunk, devices), donate_argnums=0).lower(state).compile()
    compile_seconds += time.perf_counter() - start

    steps_per_chunk = seeds * length * config.batch_size
    total_steps = seeds * trainer.num_updates * config.batch_size
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, unit="step", unit_scale=True, dynamic_ncols=True,
                   desc=f"{config.algo} {config.env_id} ×{seeds}")
    chunks, run_start = [], time.perf_counter()
    for _ in range(trainer.num_updates // length):
        state, metrics = chunk(state)
        metrics = jax.device_get(metrics)
        chunks.append(metrics)
        if bar is not None:
            bar.update(steps_per_chunk)
            latest = np.nanmean(metrics["episodic_return"][:, -1]) if np.isfinite(
                metrics["episodic_return"][:, -1]).any() else float("nan")
            bar.set_postfix_str(f"return {latest:.1f}")
    jax.block_until_ready(state)
    run_seconds = time.perf_counter() - run_start
    if bar is not None:
        bar.close()

    metrics = {k: np.concatenate([np.asarray(c[k]) for c in chunks], axis=1)
               for k in trainer.metrics}
    summary = {
        "algo": config.algo,
        "env": config.env_id,
        "seeds": seeds,
        "seed": seed,
        "final_return": final_returns(metrics),
        "final_return_window": FINAL_WINDOW,
        "env_steps_per_seed": trainer.num_updates * config.batch_size,
        "num_updates": trainer.num_updates,
        "steps_per_second": total_steps / run_seconds,
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
