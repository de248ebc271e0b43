"""``pgjax train ALGO ENV [...]``, ``pgjax resume DIR``, ``pgjax sweep [SPEC]``, ``pgjax meta
ALGO ENV``, ``pgjax plot DIR``, ``pgjax eval DIR`` and ``pgjax list``. ``pgjax resume``
continues a run or, given a sweep or meta-learning directory, the sweep or the meta run.

Bad input (an unknown algorithm or env id, a value out of range, a batch that the minibatches do
not divide, a checkpoint of a different run, ...) prints one line naming the field and what is
allowed, and exits with status 2 before anything is compiled. A numerical fault (a NaN or
infinity in training) prints one line naming the update, the quantity and the seed, and exits
with status 3; the last finite checkpoint is kept. A file-system fault (no space, read-only,
permission denied, a run directory removed) prints one line naming the path and the reason and
exits with status 4; the last complete checkpoint stays the newest readable one.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

from pgjax.cli_args import OneLineParser, check_flag_types, parse_sets
from pgjax.cli_report import final_table, written
from pgjax.devices import one_line_warning, use_compile_cache, use_host_devices
from pgjax.programs import program_store, use_program_store


def _results_table(summary) -> str:
    lines = [f"{'seed':>4}  {'final return':>12}"]
    for i, ret in enumerate(summary["final_return"]):
        lines.append(f"{i:>4}  {ret:>12.1f}")
    finite = [r for r in summary["final_return"] if not math.isnan(r)]
    mean = sum(finite) / len(finite) if finite else float("nan")
    lines += [
        f"{'mean':>4}  {mean:>12.1f}",
        "",
        f"env steps per seed  {summary['env_steps_per_seed']:,}",
        f"steps/s (all seeds) {summary['steps_per_second']:,.0f}",
        f"compile             {summary['compile_seconds']:.1f} s",
        f"wall (incl. compile) {summary['wall_seconds']:.1f} s",
        f"devices             {len(summary['devices'])} × {summary['devices'][0].split(':')[0]}",
    ]
    return "\n".join(lines)


def cmd_train(args) -> int:
    import pgjax

    overrides = parse_sets(args.set or [])
    if args.total_timesteps is not None:
        overrides["total_timesteps"] = args.total_timesteps
    if args.seeds < 1:
        raise ValueError(f"--seeds: {args.seeds} must be a positive integer")
    config = pgjax.make_config(args.algo, args.env, preset=args.preset, **overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or f"runs/{args.algo}-{config.env_id.split('/')[-1]}-{stamp}"
    result = pgjax.train(config, seeds=args.seeds, out=out, seed=args.seed,
                         progress=not args.quiet, checkpoint=_checkpoint_options(args),
                         sinks=args.sinks or ())
    _report(result, out)
    return 0


def _checkpoint_options(args):
    from pgjax.checkpoint import CheckpointOptions

    if args.no_checkpoints:
        return False
    if args.checkpoint_every is None and args.checkpoint_every_updates is None and \
            args.keep_checkpoints is None and args.on_checkpoint_error is None:
        return None  # train: the defaults; resume: the run's own options
    defaults = CheckpointOptions()
    seconds = defaults.every_seconds if args.checkpoint_every is None else args.checkpoint_every
    return CheckpointOptions(every_seconds=seconds if seconds > 0 else None,
                             every_updates=args.checkpoint_every_updates,
                             keep=defaults.keep if args.keep_checkpoints is None
                             else args.keep_checkpoints,
                             on_write_error=args.on_checkpoint_error or defaults.on_write_error)


def cmd_resume(args) -> int:
    from pgjax import cli_meta
    from pgjax.runs import resume, run_kind

    kind = run_kind(args.dir)
    if kind == "meta":
        return cli_meta.resume(args.dir, args.quiet)
    result = resume(args.dir, progress=not args.quiet, checkpoint=_checkpoint_options(args))
    if kind == "sweep":
        return _sweep_report(result)
    _report(result, args.dir)
    return 0


def _report(result, out) -> None:
    config = result.config
    if result.summary["resumed_at_update"] is not None:
        print(f"resumed at update {result.summary['resumed_at_update']} of "
              f"{result.summary['num_updates']}")
    if any(result.summary["nonfinite_updates"]):
        print(f"skipped non-finite updates per seed: {result.summary['nonfinite_updates']}")
    print(f"\n{config.algo} on {config.env_id}, final return per seed "
          f"(mean over the episodes of the last {result.summary['final_return_window']:.0%} "
          f"of updates):")
    print(_results_table(result.summary))
    if any(math.isnan(r) for r in result.summary["final_return"]):
        print(f"(nan: no episode ended in those updates — long episodes over many envs; "
              f"`pgjax eval {out}` plays the trained policy)")
    print(f"\nwrote {written(out)}")


def cmd_eval(args) -> int:
    import jax
    import numpy as np

    from pgjax.checks import read_json
    from pgjax.config import config_from_dict
    from pgjax.policy import POLICY_FILE, evaluate, load_policies

    run = Path(args.dir)
    if not (run / "summary.json").exists() or not (run / POLICY_FILE).exists():
        raise ValueError(f"eval: {run} has no summary.json and {POLICY_FILE} "
                         "(a directory written by `pgjax train`)")
    summary = read_json(run / "summary.json", "eval")
    config = config_from_dict(summary["config"])
    policies = load_policies(run / POLICY_FILE, config, summary["seeds"])
    if args.video:  # one episode of seed 0's policy (pgjax.video); refused before evaluating
        from pgjax.video import record_video
        frames = record_video(config, policies, args.video, args.video_steps, args.seed,
                              args.deterministic)
        print(f"wrote {args.video} ({frames} frames)")
    keys = jax.random.split(jax.random.key(args.seed), summary["seeds"])
    returns = np.asarray(jax.jit(jax.vmap(lambda p, k: evaluate(
        config, p, k, args.episodes, deterministic=args.deterministic)))(policies, keys))
    mode = "deterministic" if args.deterministic else "stochastic"
    print(f"{config.algo} on {config.env_id}: {args.episodes} {mode} episodes per seed")
    print(f"{'seed':>4}  {'eval return':>11}  {'± std':>7}  {'trained final return':>20}")
    for i, (r, final) in enumerate(zip(returns, summary["final_return"])):
        print(f"{i:>4}  {np.nanmean(r):>11.1f}  {np.nanstd(r):>7.1f}  {final:>20.1f}")
    return 0


def _launch_local_processes(args) -> int:
    """``pgjax sweep ... --local-processes N``: the same command in N processes on this machine,
    one host device each, joined by jax.distributed on 127.0.0.1 (on CPU each process then
    vmaps its share of every group instead of running it one run after another)."""
    import os
    import re
    import socket
    import subprocess

    if args.coordinator or args.num_processes:
        raise ValueError("--local-processes: cannot be combined with --coordinator or "
                         "--num-processes")
    argv, skip = [], False
    for item in args.argv:
        if skip or item == "--local-processes" or item.startswith("--local-processes="):
            skip = item == "--local-processes"
            continue
        argv.append(item)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PGJAX_HOST_DEVICES": "1",
           "XLA_FLAGS": re.sub(r"--xla_force_host_platform_device_count=\S+", "",
                               os.environ.get("XLA_FLAGS", "")).strip()}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "pgjax", *argv, "--coordinator", f"127.0.0.1:{port}",
         "--num-processes", str(args.local_processes), "--process-id", str(i)],
        env=env, stdout=None if i == 0 else subprocess.DEVNULL)
        for i in range(args.local_processes)]
    return max(p.wait() for p in procs)


def cmd_sweep(args) -> int:
    from pgjax.cli_args import check_process_flags, parse_grid

    check_process_flags(args)
    overrides = {"algos": args.algos, "envs": args.envs, "seeds": args.seeds,
                 "seed": args.seed, "num_chunks": args.num_chunks, "sinks": args.sinks,
                 "checkpoint": _checkpoint_options(args), "grid": parse_grid(args.grid or []) or
                 None, "set": parse_sets(args.set) if args.set else None}
    if args.local_processes and args.local_processes > 1:
        from pgjax.sweeps import check_sweep

        check_sweep(args.spec, **overrides)  # bad input refused once, here
        return _launch_local_processes(args)
    if args.coordinator or args.num_processes:
        import jax

        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    from pgjax.sweeps import sweep

    return _sweep_report(sweep(args.spec, out=args.out, progress=not args.quiet, **overrides))


def _sweep_report(result) -> int:
    for record in result.manifest["groups"]:
        print(f"{record['id']:<32} {record['runs']:>4} runs  {record['status']:<8} compile "
              f"{record['compile_seconds']:6.1f} s  run {record['run_seconds']:7.1f} s  "
              f"{record['steps_per_second']:>10,.0f} steps/s")
    if (Path(result.out) / "final.csv").is_file():  # (process 0 writes it)
        print("\nfinal return per configuration (over seeds; the last 5% of updates):")
        print(final_table(Path(result.out) / "final.csv"))
    print(f"wrote {result.out}/results.csv, final.csv, manifest.json")
    return 0


def cmd_plot(args) -> int:
    from pgjax.analysis import plot_runs
    from pgjax.results import load_references

    plots = plot_runs(args.dirs, out=args.out, references=load_references(args.references))
    print(f"aggregate.png: {plots.normalisation}")
    print("wrote " + ", ".join(str(path) for path in plots.paths))
    return 0


def cmd_list(args) -> int:
    from pgjax.config import ALGORITHMS
    from pgjax.envs import list_envs

    print("algorithms:")
    for name, spec in ALGORITHMS.items():
        print(f"  {name:<8} {spec.description}")
        own = spec.hyperparameters()
        if spec.hyperparameter_names:
            print("           hyperparameters: " + ", ".join(
                f"{k}={getattr(own, k)}" for k in spec.hyperparameter_names))
    print("environments (a bare gymnax id also works):")
    for env_id in list_envs():
        print(f"  {env_id}")
    return 0


def _checkpoint_arguments(parser) -> None:
    from pgjax.checkpoint import CheckpointOptions

    defaults = CheckpointOptions()
    parser.add_argument("--checkpoint-every", type=float, default=None, metavar="SECONDS",
                        help="checkpoint at the first chunk end after SECONDS (default "
                             f"{defaults.every_seconds:g}; 0: only by "
                             "--checkpoint-every-updates and at the end)")
    parser.add_argument("--checkpoint-every-updates", type=int, default=None, metavar="N",
                        help="also checkpoint at the first chunk end after N updates")
    parser.add_argument("--keep-checkpoints", type=int, default=None, metavar="K",
                        help=f"keep the newest K checkpoints (default {defaults.keep})")
    parser.add_argument("--no-checkpoints", action="store_true", help="write no checkpoints")
    parser.add_argument("--on-checkpoint-error", choices=["stop", "continue"], default=None,
                        help="a checkpoint that cannot be written (no space, read-only) stops "
                             "the run with exit status 4 (default: stop), or warns and trains on")


NO_CACHE_HELP = ("compile every program afresh instead of loading it from JAX's persistent "
                 "compilation cache (default: on, in PGJAX_COMPILE_CACHE or ~/.cache/pgjax/xla)")


def build_parser() -> argparse.ArgumentParser:
    from pgjax import cli_meta

    parser = OneLineParser(prog="pgjax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train an algorithm on an environment")
    train.add_argument("algo", help="algorithm name (see `pgjax list`)")
    train.add_argument("env", help="environment id, e.g. CartPole-v1 or gymnax/Pendulum-v1")
    train.add_argument("--seeds", type=int, default=1, help="independent runs (default 1)")
    train.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    train.add_argument("--total-timesteps", type=float, default=None,
                       help="env steps per seed (default: the algorithm/env preset)")
    train.add_argument("--out", default=None, help="run directory (default runs/ALGO-ENV-TIME)")
    train.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                       help="override config fields, e.g. --set learning_rate=3e-4 num_envs=8; "
                            "env.NAME=VALUE passes NAME to the env (env.backend=spring)")
    train.add_argument("--preset", default=None, metavar="NAME",
                       help="another registered preset of the algorithm for this env, e.g. "
                            "playground (Playground's Brax-PPO settings, 2048 envs: for a GPU)")
    train.add_argument("--sinks", nargs="*", default=None, choices=["tensorboard", "wandb"],
                       help="optional metric sinks (one run per seed), e.g. --sinks tensorboard")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--no-compile-cache", action="store_true", help=NO_CACHE_HELP)
    _checkpoint_arguments(train)
    train.set_defaults(func=cmd_train)
    resume = sub.add_parser("resume", help="continue a run or a sweep from its latest good "
                            "checkpoints")
    resume.add_argument("dir", help="the run directory (its checkpoints/ folder) or a sweep "
                        "directory (its spec.json)")
    resume.add_argument("--quiet", action="store_true", help="no progress bar")
    resume.add_argument("--no-compile-cache", action="store_true", help=NO_CACHE_HELP)
    _checkpoint_arguments(resume)
    resume.set_defaults(func=cmd_resume)
    evaluation = sub.add_parser("eval", help="evaluate the policies a `pgjax train` run saved")
    evaluation.add_argument("dir", help="the run directory")
    evaluation.add_argument("--episodes", type=int, default=16, help="per seed (default 16)")
    evaluation.add_argument("--deterministic", action="store_true",
                            help="act with the distribution's mode instead of sampling")
    evaluation.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    evaluation.add_argument("--video", metavar="FILE.gif", help="also write one episode of "
                            "seed 0's policy as an animated GIF (pgjax.video lists the envs)")
    evaluation.add_argument("--video-steps", type=int, default=500, metavar="N",
                            help="cut the video's episode after N steps (default 500)")
    evaluation.add_argument("--no-compile-cache", action="store_true", help=NO_CACHE_HELP)
    evaluation.set_defaults(func=cmd_eval)
    sw = sub.add_parser("sweep", help="algorithms × envs × seeds × hyperparameter grid, one "
                        "compile per program shape, over every device (see pgjax.sweeps)")
    sw.add_argument("spec", nargs="?", default=None, help="YAML spec file (flags override it)")
    sw.add_argument("--algos", nargs="+", default=None, help="algorithm names")
    sw.add_argument("--envs", nargs="+", default=None, help="environment ids")
    sw.add_argument("--seeds", type=int, default=None, help="seeds per configuration")
    sw.add_argument("--seed", type=int, default=None, help="base random seed (default 0)")
    sw.add_argument("--grid", nargs="*", metavar="KEY=V1,V2",
                    help="hyperparameter values, cartesian product, e.g. learning_rate=1e-4,3e-4")
    sw.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="fixed overrides of every run")
    sw.add_argument("--num-chunks", type=int, default=None, help="jitted chunks per group")
    sw.add_argument("--sinks", nargs="*", default=None, choices=["tensorboard", "wandb"],
                    help="optional metric sinks (one run per seed)")
    sw.add_argument("--out", default="sweeps/sweep", help="sweep directory (resumes if it exists)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.add_argument("--no-compile-cache", action="store_true", help=NO_CACHE_HELP)
    _checkpoint_arguments(sw)  # each group's, in DIR/groups/<id>/checkpoints
    sw.add_argument("--coordinator", default=None,
                    help="jax.distributed coordinator host:port (multi-process sweeps)")
    sw.add_argument("--num-processes", type=int, default=None, help="jax.distributed processes")
    sw.add_argument("--process-id", type=int, default=None, help="this process's index")
    sw.add_argument("--local-processes", type=int, default=None, metavar="N",
                    help="run the sweep in N local processes, one host device each, joined by "
                         "jax.distributed (CPU: vmapped runs on every core)")
    sw.set_defaults(func=cmd_sweep)
    plot = sub.add_parser("plot", help="learning curves, final-score intervals and an aggregate "
                          "of training runs and sweeps, compared on one figure")
    plot.add_argument("dirs", nargs="+", metavar="DIR",
                      help="directories written by `pgjax train` or `pgjax sweep`")
    plot.add_argument("--out", default=None, help="where to write the images (default "
                      "DIR/plots for one directory, plots/ for several)")
    plot.add_argument("--references", nargs="+", action="extend", metavar="ENV=LOW,HIGH",
                      help="per-env scores normalised to 0 and 1 in the aggregate, e.g. "
                           "CartPole-v1=0,500, or a JSON/YAML file {env: [low, high]} (default: "
                           "the lowest and highest final return plotted)")
    plot.set_defaults(func=cmd_plot)
    cli_meta.add_parser(sub)
    lst = sub.add_parser("list", help="list algorithms and environments")
    lst.set_defaults(func=cmd_list)
    return check_flag_types(parser)  # counts, seeds and numbers refused in one line


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    use_host_devices()  # every CPU core: one XLA host device each (before JAX starts)
    formatwarning, warnings.formatwarning = warnings.formatwarning, one_line_warning
    store = program_store()  # restored on return (main called from Python, e.g. a notebook)
    if not getattr(args, "no_compile_cache", True):
        use_compile_cache()  # the same config again: its programs load instead of compiling
    try:
        return args.func(args)
    except (ValueError, TypeError) as error:
        print(f"pgjax: error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # pgjax.faults.NumericalFault
        print(f"pgjax: {error}", file=sys.stderr)
        return 3
    except OSError as error:  # pgjax.faults.WriteFault: no space, read-only, permission denied
        from pgjax.faults import os_error_line

        print(f"pgjax: {os_error_line(error)}", file=sys.stderr)
        return 4
    finally:  # "pgjax: warning: ..." on one line, while the command runs
        warnings.formatwarning = formatwarning
        use_program_store(store)


if __name__ == "__main__":
    sys.exit(main())
