"""Meta-train a learned drift with ``pgjax.meta``, evaluate it against its PPO initialisation,
time a generation against the same members evaluated one after another, and ship it.

    python benchmarks/meta_train.py --name lpo_cartpole            # meta-train (resumable)
    python benchmarks/meta_train.py --name lpo_cartpole --evaluate # ES mean vs PPO-init
    python benchmarks/meta_train.py --name lpo_cartpole --speed    # generation vs one by one
    python benchmarks/meta_train.py --name lpo_cartpole --ship     # → pgjax/drift_params/

Results go to ``benchmarks/results/meta-<name>/`` (the ``pgjax meta`` run directory, plus
``evaluation.json`` and ``speed.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import pgjax

pgjax.use_host_devices()  # before the first JAX computation: one CPU device per core

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from pgjax import drifts, meta  # noqa: E402
from pgjax.trainer import make_train  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def spec_from(args) -> meta.MetaSpec:
    overrides = dict(item.split("=", 1) for item in args.set or [])
    return meta.MetaSpec(algo=args.algo, envs=(args.env,),
                         set={"total_timesteps": args.total_timesteps, **overrides},
                         sigma=args.sigma, learning_rate=args.learning_rate,
                         drift_hidden=args.drift_hidden, init_scale=args.init_scale,
                         generations=args.generations, population_size=args.population,
                         inner_seeds=args.inner_seeds, seed=args.seed,
                         fitness_updates=args.fitness_updates)


def ci95(x) -> tuple[float, float]:
    """Mean and the half-width of its normal 95% interval (1.96 standard errors)."""
    x = np.asarray(x, np.float64)
    return float(x.mean()), float(1.96 * x.std(ddof=1) / np.sqrt(len(x)))


def evaluate(spec: meta.MetaSpec, out: Path, seeds: int) -> dict:
    """PPO-init (the zero parameters: exactly PPO), the initial ES mean and the final ES mean
    on ``seeds`` inner runs each, with keys meta-training never used (base seed 10_000 +
    spec.seed); the same keys for all three (paired differences)."""
    config = spec.configs()[0]
    learned = drifts.load_params(out / "mean.npz")
    initial = spec.initial_params(config)
    zero = jax.tree.map(jnp.zeros_like, learned)
    members = jax.tree.map(lambda *x: jnp.stack(x), zero, initial, learned)
    updates = meta._fitness_updates(spec, config)
    keys = jax.random.split(jax.random.key(10_000 + spec.seed), seeds)
    returns = np.asarray(meta.make_evaluate(config, seeds, updates)(members, keys))
    report = {"seeds": seeds}
    for name, row in zip(("ppo_init", "es_initial_mean", "es_mean"), returns):
        mean, ci = ci95(row)
        report[name] = row.tolist()
        report[f"{name}_mean"], report[f"{name}_ci95"] = mean, ci
    report["paired_difference"], report["paired_difference_ci95"] = ci95(returns[2] - returns[0])
    report["beats_by_more_than_ci"] = bool(report["es_mean_mean"] - report["ppo_init_mean"] > max(
        report["ppo_init_ci95"], report["es_mean_ci95"]))
    print(f"PPO-init {report['ppo_init_mean']:.1f} ± {report['ppo_init_ci95']:.1f}   initial ES "
          f"mean {report['es_initial_mean_mean']:.1f} ± {report['es_initial_mean_ci95']:.1f}   "
          f"ES mean {report['es_mean_mean']:.1f} ± {report['es_mean_ci95']:.1f}   paired "
          f"difference {report['paired_difference']:+.1f} ± "
          f"{report['paired_difference_ci95']:.1f}   ({seeds} inner seeds)")
    return report


def speed(spec: meta.MetaSpec, repeats: int) -> dict:
    """Wall time of one generation's evaluation (population + ES mean, × inner seeds, one
    program over every device) against the same runs one after another through one compiled
    single-run program; medians over ``repeats``, compile excluded."""
    config = spec.configs()[0]
    updates = meta._fitness_updates(spec, config)
    solution = spec.initial_params(config)
    strategy, params = meta.make_strategy(spec, solution)
    state = strategy.init(jax.random.key(0), solution, params)
    population, state = strategy.ask(jax.random.key(1), state, params)
    members = jax.tree.map(lambda p, m: jnp.concatenate([p, m[None]]), population,
                           strategy.get_mean(state))
    keys = jax.random.split(jax.random.key(2), spec.inner_seeds)
    together = meta.make_evaluate(config, spec.inner_seeds, updates)
    together = together.lower(members, keys).compile()

    def one(p, k):
        _, metrics = make_train(config.replace(drift_params=p))(k)
        return meta.final_return(metrics, updates)

    single = jax.jit(one).lower(jax.tree.map(lambda x: x[0], members), keys[0]).compile()
    count = jax.tree.leaves(members)[0].shape[0]
    times = {"generation": [], "one_by_one": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        joint = np.asarray(together(members, keys))
        times["generation"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        alone = np.array([[float(single(jax.tree.map(lambda x, m=m: x[m], members), keys[s]))
                           for s in range(spec.inner_seeds)] for m in range(count)])
        times["one_by_one"].append(time.perf_counter() - t0)
    generation, one_by_one = (statistics.median(times[k]) for k in times)
    report = {"runs": count * spec.inner_seeds, "devices": [str(d) for d in jax.devices()],
              "generation_s": times["generation"], "one_by_one_s": times["one_by_one"],
              "median_ratio": generation / one_by_one,
              "max_abs_difference": float(np.nanmax(np.abs(joint - alone))),
              "load_average": list(__import__("os").getloadavg())}
    print(f"{count} members × {spec.inner_seeds} seeds: generation {generation:.1f} s, one "
          f"after another {one_by_one:.1f} s, ratio {generation / one_by_one:.2f} (median of "
          f"{repeats}); max |difference| {report['max_abs_difference']:.3g}")
    return report


def ship(name: str, out: Path, evaluation: dict | None) -> None:
    drifts.SHIPPED_DIR.mkdir(exist_ok=True)
    shutil.copy(out / "mean.npz", drifts.SHIPPED_DIR / f"{name}.npz")
    record = json.loads((out / "meta.json").read_text())
    record["found_by"] = "benchmarks/meta_train.py"
    record["evaluation"] = evaluation
    (drifts.SHIPPED_DIR / f"{name}.json").write_text(json.dumps(record, indent=2))
    print(f"shipped {drifts.SHIPPED_DIR / name}.npz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="lpo_cartpole")
    parser.add_argument("--algo", default="lpo")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--total-timesteps", type=int, default=65_536)
    parser.add_argument("--generations", type=int, default=64)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--inner-seeds", type=int, default=2)
    parser.add_argument("--fitness-updates", type=int, default=None)
    parser.add_argument("--sigma", type=float, default=0.04)
    parser.add_argument("--drift-hidden", type=int, default=None)
    parser.add_argument("--init-scale", type=float, default=0.0)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="inner config overrides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluate", action="store_true")
    parser.add_argument("--eval-seeds", type=int, default=32)
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ship", action="store_true")
    args = parser.parse_args()
    out = RESULTS / f"meta-{args.name}"
    spec = spec_from(args)
    from pgjax.meta_files import is_meta_dir, read_spec

    if (args.evaluate or args.speed or args.ship) and is_meta_dir(out):
        spec = meta.MetaSpec.from_dict(read_spec(out))  # evaluate what was trained
    if not (args.evaluate or args.speed or args.ship):
        result = meta.meta_train(spec, out)
        print(f"compile {result.seconds['compile']:.1f} s, generations "
              f"{result.seconds['generations']:.1f} s; ES mean fitness "
              f"{result.history['mean_fitness'][0]:.1f} → {result.history['mean_fitness'][-1]:.1f}")
    evaluation = None
    if args.evaluate:
        evaluation = evaluate(spec, out, args.eval_seeds)
        (out / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    if args.speed:
        (out / "speed.json").write_text(json.dumps(speed(spec, args.repeats), indent=2))
    if args.ship:
        if evaluation is None and (out / "evaluation.json").exists():
            evaluation = json.loads((out / "evaluation.json").read_text())
        ship(args.name, out, evaluation)


if __name__ == "__main__":
    main()
