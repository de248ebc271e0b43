"""Scaling: env-only and training steps/s as num_envs grows, and training steps/s as the number
of vmapped runs grows (gymnax CartPole-v1, PPO), with a plot.

* env-only: ``jit(scan(vmap(env.step)))`` of random actions over ``num_envs`` envs;
* training: ``jit(make_train(config))`` at ``num_envs`` envs × 128 steps per update;
* runs: ``jit(vmap(make_train(config)))`` over 1, 2, 4, … seeds (16 envs each), on one device.

Compile is excluded (AOT lower + compile first); each point is the median of ``--repeats``.

    python benchmarks/scaling.py --profile cpu      # num_envs 1…1024, runs 1…16
    python benchmarks/scaling.py --profile gpu      # num_envs 1…4096, runs 1…256
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import pgjax

pgjax.use_host_devices()  # before the first JAX computation: one CPU device per core

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from pgjax import envs  # noqa: E402

PROFILES = {
    "cpu": {"num_envs": [1, 4, 16, 64, 256, 1024], "runs": [1, 2, 4, 8, 16],
            "env_steps": 2 ** 17, "train_updates": 4},
    "gpu": {"num_envs": [1, 4, 16, 64, 256, 1024, 4096], "runs": [1, 4, 16, 64, 256],
            "env_steps": 2 ** 22, "train_updates": 16},
    "smoke": {"num_envs": [1, 16], "runs": [1, 2], "env_steps": 2 ** 12, "train_updates": 2},
}
ENV = "CartPole-v1"


def _time(fn, *args, repeats):
    compiled = jax.jit(fn).lower(*args).compile()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def env_only(num_envs: int, total: int, repeats: int) -> float:
    env = envs.make(ENV)
    length = max(1, total // num_envs)

    def rollout(key):
        state, _ = jax.vmap(env.reset)(jax.random.split(key, num_envs))

        def step(carry, key):
            state, total_reward = carry
            key_action, key_step = jax.random.split(key)
            actions = jax.random.randint(key_action, (num_envs,), 0, env.action_space.n)
            state, _, reward, *_ = jax.vmap(env.step)(
                jax.random.split(key_step, num_envs), state, actions)
            return (state, total_reward + reward.sum()), None

        (_, reward), _ = jax.lax.scan(step, (state, jnp.float32(0)),
                                      jax.random.split(key, length))
        return reward

    return length * num_envs / _time(rollout, jax.random.key(0), repeats=repeats)


def training(num_envs: int, runs: int, updates: int, repeats: int) -> float:
    batch = num_envs * 128
    config = pgjax.make_config("ppo", ENV, num_envs=num_envs, num_steps=128,
                               num_minibatches=min(8, batch), total_timesteps=updates * batch)
    keys = jax.random.split(jax.random.key(0), runs)
    seconds = _time(jax.vmap(pgjax.make_train(config)), keys, repeats=repeats)
    return runs * updates * batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    p = PROFILES[args.profile]
    out = Path(args.out or Path(__file__).parent / "results" / f"scaling-{args.profile}")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in p["num_envs"]:
        rows.append(("env_only", n, 1, env_only(n, p["env_steps"], args.repeats)))
        rows.append(("training", n, 1, training(n, 1, p["train_updates"], args.repeats)))
        print(f"num_envs {n:>5}: env-only {rows[-2][3]:>13,.0f} steps/s, training "
              f"{rows[-1][3]:>11,.0f} steps/s", flush=True)
    for r in p["runs"]:
        rows.append(("training_runs", 16, r, training(16, r, p["train_updates"], args.repeats)))
        print(f"vmapped runs {r:>4}: training {rows[-1][3]:>11,.0f} steps/s (all runs)",
              flush=True)
    with open(out / "scaling.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["kind", "num_envs", "runs", "steps_per_second"])
        writer.writerows([[k, n, r, f"{s:.6g}"] for k, n, r, s in rows])
    plot(rows, out / "scaling.png", f"{ENV}, PPO, {jax.devices()[0].platform}")
    print(f"wrote {out}/scaling.csv, scaling.png")


def plot(rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, label in (("env_only", "env only (random actions)"), ("training", "training")):
        points = [(n, s) for k, n, _, s in rows if k == kind]
        left.plot(*zip(*points), "o-", label=label)
    left.set(xscale="log", yscale="log", xlabel="num_envs", ylabel="env steps / s",
             title=f"one run: {title}")
    runs = [(r, s) for k, _, r, s in rows if k == "training_runs"]
    right.plot(*zip(*runs), "o-")
    right.set(xscale="log", yscale="log", xlabel="vmapped runs (16 envs each)",
              ylabel="env steps / s (all runs)", title="runs in one program, one device")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
