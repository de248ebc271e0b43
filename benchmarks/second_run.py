"""Seconds from process start to the first progress update of `pgjax train`, run three times
into one new compile cache (`PGJAX_COMPILE_CACHE`): the first run compiles and stores its
programs, the second and third load them.

    python benchmarks/second_run.py brax/ant brax/hopper Breakout-MinAtar [--steps 40000]

Prints per env the three times and the second / first and third / first ratios; writes them
to ``--out`` (JSON, default results/second_run.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def time_to_first_update(argv: list[str], env: dict) -> dict:
    """Seconds to the `compiling` line, the progress bar and its first non-zero update."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               text=True, bufsize=1)
    marks, line = {}, ""
    while char := process.stdout.read(1):
        if char not in "\r\n":
            line += char
            continue
        seconds = time.perf_counter() - start
        if "compiling" in line:
            marks.setdefault("compiling_line", seconds)
        done = re.search(r"\|\s*([\d.]+)k?/", line)
        if done:
            marks.setdefault("bar", seconds)
            if float(done.group(1)) > 0:
                marks.setdefault("first_update", seconds)
        line = ""
    marks["exit"] = process.wait()
    marks["total"] = time.perf_counter() - start
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="+")
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "second_run.json"))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="pgjax-second-run-") as tmp:
        for env_id in args.envs:
            cache = Path(tmp) / env_id.replace("/", "-") / "cache"
            env = {**os.environ, "PGJAX_COMPILE_CACHE": str(cache)}
            runs = []
            for i in range(3):
                out = Path(tmp) / f"run-{i}"
                shutil.rmtree(out, ignore_errors=True)
                runs.append(time_to_first_update(
                    ["pgjax", "train", args.algo, env_id, "--total-timesteps", str(args.steps),
                     "--out", str(out)], env))
            results[env_id] = runs
            seconds = [r["first_update"] for r in runs]
            print(f"{env_id}: first update at {', '.join(f'{s:.1f}' for s in seconds)} s; "
                  f"ratios {', '.join(f'{s / seconds[0]:.2f}' for s in seconds[1:])}",
                  flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
