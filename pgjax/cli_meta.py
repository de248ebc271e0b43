"""``pgjax meta``: evolve a learned drift's parameters (:mod:`pgjax.meta`) from the shell."""

from __future__ import annotations

import time


def _normalize(items) -> dict:
    table = {}
    for item in items or []:
        env, _, bounds = item.partition("=")
        try:
            low, high = (float(x) for x in bounds.split(","))
        except ValueError:
            raise ValueError(f"--normalize: {item!r} is not of the form ENV=LOW,HIGH") from None
        table[env] = (low, high)
    return table


def cmd_meta(args) -> int:
    from pgjax.cli_args import parse_sets
    from pgjax.meta import MetaSpec, meta_train

    overrides = parse_sets(args.set or [])
    if args.total_timesteps is not None:
        overrides["total_timesteps"] = args.total_timesteps
    given = dict(generations=args.generations, population_size=args.population,
                 inner_seeds=args.inner_seeds, strategy=args.strategy, sigma=args.sigma,
                 learning_rate=args.learning_rate, fitness_updates=args.fitness_updates,
                 drift_hidden=args.drift_hidden, init_scale=args.init_scale)
    spec = MetaSpec(algo=args.algo, envs=tuple(args.envs), set=overrides, seed=args.seed,
                    normalize=_normalize(args.normalize),
                    **{k: v for k, v in given.items() if v is not None})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or f"runs/meta-{args.algo}-{'+'.join(e.split('/')[-1] for e in args.envs)}" \
                      f"-{stamp}"
    report(meta_train(spec, out, progress=not args.quiet), out)
    return 0


def resume(directory, quiet: bool, generations: int | None = None) -> int:
    from pgjax.meta import resume_meta

    report(resume_meta(directory, generations=generations, progress=not quiet), directory)
    return 0


def report(result, out) -> None:
    h = result.history
    if len(h["mean_fitness"]):
        print(f"ES mean fitness: generation 0 {h['mean_fitness'][0]:.2f}, generation "
              f"{len(h['mean_fitness']) - 1} {h['mean_fitness'][-1]:.2f}; best member "
              f"{h['population_best'].max():.2f}")
    print(f"compile {result.seconds['compile']:.1f} s, generations "
          f"{result.seconds['generations']:.1f} s")
    print(f"wrote {out}/mean.npz (use: --set drift_params={out}/mean.npz), fitness.csv, "
          "fitness.png, meta.json")


def add_parser(sub) -> None:
    p = sub.add_parser("meta", help="evolve a learned drift (lpo, talpo) with an evolution "
                       "strategy; fitness = return after a whole inner training run")
    p.add_argument("algo", help="lpo, talpo (or mirror with drift_params)")
    p.add_argument("envs", nargs="+", help="inner training env(s); several need --normalize")
    p.add_argument("--generations", type=int, default=None, help="default 32")
    p.add_argument("--population", type=int, default=None,
                   help="population size (even for Open_ES; default 16)")
    p.add_argument("--inner-seeds", type=int, default=None,
                   help="inner runs per member (default 2)")
    p.add_argument("--total-timesteps", type=float, default=None,
                   help="env steps per inner run (default: the algorithm/env preset)")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="inner config overrides")
    p.add_argument("--strategy", default=None, help="an evosax distribution-based "
                   "algorithm (default Open_ES)")
    p.add_argument("--sigma", type=float, default=None,
                   help="Open_ES initial noise scale (default 0.04)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="Open_ES Adam learning rate on the mean (default 0.01)")
    p.add_argument("--drift-hidden", type=int, default=None, metavar="H",
                   help="hidden width of the drift net to evolve (default: 128, Lu et al.)")
    p.add_argument("--init-scale", type=float, default=None, metavar="S",
                   help="std of a random initial ES mean (default 0: exactly PPO; the drift "
                        "net's sign symmetry stalls the ES there, 0.1 worked)")
    p.add_argument("--fitness-updates", type=int, default=None, metavar="K",
                   help="fitness = mean return of the last K updates (default: last 5%%)")
    p.add_argument("--normalize", nargs="*", metavar="ENV=LOW,HIGH",
                   help="per-env score range for a multi-env fitness")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directory (resumes if it holds one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-compile-cache", action="store_true",
                   help="compile every program afresh (no persistent compilation cache)")
    p.set_defaults(func=cmd_meta)
