"""A sweep against the same runs one after another, and the sweep's peak memory vs its length.

Grid: 2 algorithms (ppo, spo) × 3 learning rates × 4 seeds on gymnax CartPole-v1 (24 runs).

* ``sweep``: ``pgjax.sweep`` — one compiled program per algorithm, runs split over every local
  device (on CPU: one host device per core, each running its share one after another);
* ``sweep-1dev``: the same on one device, where the 12 runs of a group are vmapped;
* ``sweep-2proc``: ``pgjax sweep`` in two local processes joined by ``jax.distributed``
  (``PGJAX_HOST_DEVICES=1``: one host device each, so each vmaps its 6 runs of a group;
  wall time includes starting the processes);
* ``sequential``: the 24 runs one after another through the runner ``pgjax train`` uses
  (``pgjax.train(config, seeds=1)``), each compiling its own program.

Throughput = env steps of all 24 runs / seconds, with compile included (wall time of everything)
and excluded (run seconds only). The variants are interleaved over ``--repeats`` (medians).
``--rss``: peak resident memory (``resource.getrusage``) of the sweep in fresh subprocesses at
``--steps`` and at 4× ``--steps``.

    python benchmarks/sweep_speed.py --steps 131072 --repeats 2 --rss
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import pgjax

pgjax.use_host_devices()  # before the first JAX computation: one CPU device per core

import jax  # noqa: E402

ALGOS = ("ppo", "spo")
LEARNING_RATES = (2.5e-4, 5e-4, 1e-3)
SEEDS = 4


def spec(steps: int) -> dict:
    return dict(algos=list(ALGOS), envs=["CartPole-v1"], seeds=SEEDS,
                grid={"learning_rate": list(LEARNING_RATES)},
                set={"total_timesteps": steps}, num_chunks=4)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                       resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_sweep(steps: int, devices=None) -> dict:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = pgjax.sweep(spec(steps), out=out, devices=devices, progress=False)
    wall = time.perf_counter() - start
    groups = result.manifest["groups"]
    return {"wall": wall, "compile": sum(g["compile_seconds"] for g in groups),
            "run": sum(g["run_seconds"] for g in groups),
            "env_steps": sum(g["runs"] * g["env_steps_per_run"] for g in groups)}


def run_processes(steps: int, processes: int = 2) -> dict:
    import socket

    import yaml

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PGJAX_HOST_DEVICES": "1"}
    env.pop("XLA_FLAGS", None)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        path = os.path.join(out, "spec.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(spec(steps), f)
        procs = [subprocess.Popen(
            [sys.executable, "-m", "pgjax", "sweep", path, "--quiet", "--out",
             os.path.join(out, "sweep"), "--coordinator", f"127.0.0.1:{port}",
             "--num-processes", str(processes), "--process-id", str(i)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i in range(processes)]
        if any(p.wait() for p in procs):
            raise RuntimeError("a sweep process failed")
        wall = time.perf_counter() - start
        with open(os.path.join(out, "sweep", "manifest.json")) as f:
            groups = json.load(f)["groups"]
    return {"wall": wall, "compile": sum(g["compile_seconds"] for g in groups),
            "run": sum(g["run_seconds"] for g in groups),
            "env_steps": sum(g["runs"] * g["env_steps_per_run"] for g in groups)}


def run_sequential(steps: int) -> dict:
    start = time.perf_counter()
    compile_s = run_s = env_steps = 0.0
    for algo in ALGOS:
        for lr in LEARNING_RATES:
            for seed in range(SEEDS):
                config = pgjax.make_config(algo, "CartPole-v1", learning_rate=lr,
                                           total_timesteps=steps)
                result = pgjax.train(config, seeds=1, seed=seed, num_chunks=4, progress=False)
                compile_s += result.summary["compile_seconds"]
                run_s += result.summary["run_seconds"]
                env_steps += result.summary["env_steps_per_seed"]
    return {"wall": time.perf_counter() - start, "compile": compile_s, "run": run_s,
            "env_steps": env_steps}


def peak_rss(steps: int) -> float:
    """Peak RSS (MiB) of a fresh process that runs the sweep at ``steps``."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import sweep_speed, resource; sweep_speed.run_sweep({steps}); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=131_072, help="env steps per run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS (1× and 4×)")
    parser.add_argument("--json", default=None, help="write the measurements here")
    args = parser.parse_args()
    print(f"devices: {jax.devices()}; {len(ALGOS)} algos × {len(LEARNING_RATES)} lrs × "
          f"{SEEDS} seeds, {args.steps:,} steps per run; load average {os.getloadavg()}")
    variants = {"sweep": lambda: run_sweep(args.steps),
                "sweep-1dev": lambda: run_sweep(args.steps, devices=jax.devices()[:1]),
                "sweep-2proc": lambda: run_processes(args.steps),
                "sequential": lambda: run_sequential(args.steps)}
    results = {name: [] for name in variants}
    for repeat in range(args.repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for name in order:
            cpu = cpu_seconds()
            measured = variants[name]()
            measured["cpu"] = cpu_seconds() - cpu
            measured["load"] = os.getloadavg()[0]
            results[name].append(measured)
            print(f"repeat {repeat} {name:<11} wall {measured['wall']:7.1f} s  compile "
                  f"{measured['compile']:6.1f} s  run {measured['run']:6.1f} s  "
                  f"cpu {measured['cpu']:6.1f} s  load {measured['load']:.1f}", flush=True)
    med = {name: {k: statistics.median(r[k] for r in rs)
                  for k in ("wall", "compile", "run", "cpu", "env_steps")}
           for name, rs in results.items()}
    base = med["sequential"]
    print(f"\n{'variant':<11} {'wall s':>8} {'compile s':>9} {'run s':>7} "
          f"{'steps/s incl.':>13} {'steps/s excl.':>13} {'× incl.':>8} {'× excl.':>8} {'cpu s':>7}")
    for name, m in med.items():
        print(f"{name:<11} {m['wall']:8.1f} {m['compile']:9.1f} {m['run']:7.1f} "
              f"{m['env_steps'] / m['wall']:13,.0f} {m['env_steps'] / m['run']:13,.0f} "
              f"{base['wall'] / m['wall']:8.2f} {base['run'] / m['run']:8.2f} {m['cpu']:7.1f}")
    report = {"steps": args.steps, "repeats": args.repeats, "devices": len(jax.devices()),
              "raw": results, "median": med}
    if args.rss:
        one, four = peak_rss(args.steps), peak_rss(4 * args.steps)
        report["peak_rss_mib"] = {"1x": one, "4x": four, "ratio": four / one}
        print(f"\npeak RSS: {one:.0f} MiB at {args.steps:,} steps per run, {four:.0f} MiB at "
              f"{4 * args.steps:,} (ratio {four / one:.3f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
