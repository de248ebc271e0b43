"""The GPU run, prepared: five cases in one process, one results file, ≤ 8 minutes on one GPU.

Cases (run in this order; every size is settable with ``--set CASE.KEY=VALUE``):

* ``cartpole``: PPO on CartPole-v1, 2048 seeds × 500k steps at the small shape of the
  published anchor (4 envs × 128 steps, 4 epochs × 4 minibatches, lr 2.5e-4 annealed);
* ``breakout``: PPO on Breakout-MinAtar, 300 seeds × 1M steps, pgjax's registered settings
  (CNN torso, 16 envs × 128 steps, 8 × 8 minibatches);
* ``sweep``: ``pgjax.sweep`` of ppo and spo (2 groups) × 2 learning rates × 32 seeds on
  CartPole-v1, 500k steps each; compile seconds and steps/s per group;
* ``meta``: one ``pgjax.meta`` generation at population 64 (LPO on CartPole-v1, the
  ``lpo_cartpole`` recipe: 4 inner seeds of 32,768 steps for each member and the ES mean);
* ``hopper``: PPO on brax/hopper (Brax's default ``generalized`` backend), 300 seeds × 1M
  steps at the anchor's shape (32 envs × 32 steps, 9 epochs × 2 minibatches); run last,
  since its compile is the longest and its speed the least known.

Each case records compile seconds, run seconds, steps/s (env steps of all seeds over the run
seconds, compile excluded), the final returns (mean return of the episodes that ended in the
last 5% of updates; per seed, and their count, IQM, mean, min and max), its settings, and for
cartpole, breakout and hopper the published A100 figure it is compared with (``reference``).
The file also holds the device name, the jax version and the command, and is rewritten after
every case, so a run cut short keeps the cases it finished. Seeds go over every device, as
``pgjax.train`` puts them by default. A case whose optional package is missing (gymnax,
brax, evosax) is skipped with one line and recorded as skipped with the reason.

Before the first case, and after each, the script projects the run's total time (assumed
compile seconds and the reference rates, both corrected by what the finished cases measured)
and says so when it is over ``--budget`` (480 s). A case projected to end past the budget runs
fewer env steps per run, down to a quarter (``fitted_from`` in its settings keeps the number
set; ``--no-fit`` keeps them all); cases projected to end past ``--deadline`` are skipped.

    python -u benchmarks/gpu.py --out benchmarks/results/gpu.json     # the GPU run
    python benchmarks/gpu.py --dry-run                  # every case, tiny sizes, CPU: plumbing
    python benchmarks/gpu.py --dry-run --skip hopper    # no Brax compile (15–30 s on CPU)
    python benchmarks/gpu.py --only cartpole --set cartpole.seeds=512
    python benchmarks/gpu.py --print-device-command     # how to run it on the GPU machine

On the GPU machine (jax with CUDA, flax, optax, chex, orbax-checkpoint installed; no gymnax,
brax, evosax or mujoco): on a machine with the network and the same Python version, download
the missing packages with their dependencies into the git-ignored ``wheels/``
(``pip download -d wheels gymnax brax evosax mujoco mujoco-mjx six tqdm pyyaml matplotlib``;
add ``--python-version X.Y --platform manylinux2014_x86_64 --only-binary=:all:`` when the
device's Python differs), delete the wheels of what the device already has (jax, jaxlib,
flax, optax, chex, orbax-checkpoint, numpy, scipy: the folder travels to the device, and what
travels is limited), carry ``wheels`` along, and there run
``pip install --no-index --find-links wheels gymnax brax evosax mujoco mujoco-mjx`` (and the
rest) before the command above. The script imports pgjax from this checkout (the repository
root goes first on ``sys.path``), so pgjax itself needs no install.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BUDGET = 480.0  #: seconds: the whole run on one GPU, compiles included
TINY = {"actor_hidden": (16,), "critic_hidden": (16,), "num_epochs": 1, "num_minibatches": 2}

DEVICE_COMMAND = """\
# on a machine with the network, the same Python as the device's, in the repository root:
pip download -d wheels gymnax brax evosax mujoco mujoco-mjx six tqdm pyyaml matplotlib
#   then delete from wheels/ what the device has (jax*, flax, optax, chex, orbax*, numpy,
#   scipy): wheels/ is git-ignored and must be carried along to the device
# on the device, in the repository root (carry: wheels):
pip install --no-index --find-links wheels gymnax brax evosax mujoco mujoco-mjx six tqdm \\
    pyyaml matplotlib
python -u benchmarks/gpu.py --out benchmarks/results/gpu.json
# (where only one folder comes back from the device, e.g. $OUT, give --out a path in it; a
# run limit of 570 s leaves the script's 480 s budget and its start-up; the file is rewritten
# after every case, so a run cut short keeps the finished cases)"""


@dataclasses.dataclass(frozen=True)
class Case:
    """One measured case: what it runs (``kind``), with which settings on the GPU and in a dry
    run, which modules it needs, and what the time projection assumes before it has run."""

    name: str
    kind: str  #: "train", "sweep" or "meta"
    requires: tuple  #: importable modules; a missing one skips the case
    settings: dict  #: the GPU run's; keys other than the script's own are config fields
    dry: dict  #: replaces settings' entries in a dry run
    assumed_compile: float  #: seconds, a guess until a case has compiled
    expected_rate: float  #: env steps/s: the reference's, or a guess
    reference: dict | None = None


CASES = (
    Case("cartpole", "train", ("gymnax",),
         {"algo": "ppo", "env": "CartPole-v1", "seeds": 2048, "total_timesteps": 500_000,
          "num_envs": 4, "num_steps": 128, "num_epochs": 4, "num_minibatches": 4,
          "learning_rate": 2.5e-4, "anneal_lr": True},
         {"seeds": 2, "total_timesteps": 256, "num_envs": 4, "num_steps": 16, **TINY},
         assumed_compile=15, expected_rate=10.4e6,
         reference={"steps_per_second": 10.4e6, "hardware": "one NVIDIA A100", "source": (
             "published PureJaxRL figure: 2048 PPO agents on gymnax CartPole-v1, 500k steps "
             "each, 4 envs x 128 steps, 4 epochs x 4 minibatches; aggregate env steps/s")}),
    Case("breakout", "train", ("gymnax",),
         {"algo": "ppo", "env": "Breakout-MinAtar", "seeds": 300, "total_timesteps": 1_000_000},
         {"seeds": 2, "total_timesteps": 128, "num_envs": 2, "num_steps": 16,
          "conv_channels": (4,), **TINY},
         assumed_compile=20, expected_rate=5e6,
         reference={"steps_per_second": 5e6, "hardware": "one NVIDIA A100", "source": (
             "published rejax figure: 300 PPO agents x 1M steps on gymnax Breakout-MinAtar; "
             "aggregate env steps/s (its network and batch shape are not matched here)")}),
    Case("sweep", "sweep", ("gymnax",),
         {"algos": ("ppo", "spo"), "env": "CartPole-v1", "learning_rates": (5e-4, 1e-3),
          "seeds": 32, "total_timesteps": 500_000},
         {"seeds": 2, "total_timesteps": 256, "num_envs": 4, "num_steps": 16, **TINY},
         assumed_compile=30, expected_rate=5e6),
    Case("meta", "meta", ("gymnax", "evosax"),
         {"algo": "lpo", "env": "CartPole-v1", "population": 64, "inner_seeds": 4,
          "total_timesteps": 32_768, "learning_rate": 3e-3, "drift_hidden": 16,
          "init_scale": 0.1, "sigma": 0.1, "es_learning_rate": 0.03, "fitness_updates": 4},
         {"population": 4, "inner_seeds": 2, "total_timesteps": 128, "num_envs": 4,
          "num_steps": 16, "drift_hidden": 4, "fitness_updates": 1, **TINY},
         assumed_compile=20, expected_rate=2e6),
    Case("hopper", "train", ("brax", "mujoco"),
         {"algo": "ppo", "env": "brax/hopper", "seeds": 300, "total_timesteps": 1_000_000,
          "num_envs": 32, "num_steps": 32, "num_epochs": 9, "num_minibatches": 2,
          "learning_rate": 2.5674e-4, "max_grad_norm": 1.0, "gamma": 0.995, "ent_coef": 0.01},
         # positional physics: hopper compiled in 13.5–30 s on the 2-core CPU (49 s generalized)
         {"seeds": 2, "total_timesteps": 64, "num_envs": 2, "num_steps": 8,
          "env_kwargs": {"backend": "positional"}, **TINY, "num_minibatches": 1},
         assumed_compile=90, expected_rate=1.25e6,
         reference={"steps_per_second": 1.25e6, "hardware": "one NVIDIA A100", "source": (
             "published rejax figure: 300 PPO agents x 1M steps on Brax hopper, with its "
             "tuned shape (32 envs x 32 steps, 9 epochs x 2 minibatches, used here); "
             "aggregate env steps/s")}),
)
#: settings the script reads itself; every other key is a config field or hyperparameter
SCRIPT_KEYS = {"algo", "algos", "env", "seeds", "learning_rates", "population", "inner_seeds",
               "drift_hidden", "init_scale", "sigma", "es_learning_rate", "fitness_updates",
               "fitted_from"}
LIST_KEYS = {"algos", "learning_rates"}


def value(text: str):
    """``"3"`` and ``"1e6"`` → ints, ``"1e-3"`` → 0.001, ``"true"`` → True; anything else
    stays a string (``make_config`` parses a config field's string, e.g. ``"64,64"``)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if "e" in text.lower() and number.is_integer() else number


def case_settings(case: Case, dry_run: bool, sets: list[str]) -> dict:
    """The case's settings: its GPU defaults, the dry-run sizes over them, then ``--set``'s
    ``CASE.KEY=VALUE`` entries for this case (``CASE.env.NAME=VALUE`` goes to the env)."""
    settings = {**case.settings, **(case.dry if dry_run else {})}
    for item in sets:
        name, assignment = item.split(".", 1)
        key, text = (part.strip() for part in assignment.split("=", 1))
        if name != case.name:
            continue
        if key.startswith("env."):
            settings["env_kwargs"] = {**settings.get("env_kwargs", {}), key[4:]: value(text)}
        elif key in LIST_KEYS:
            settings[key] = tuple(value(v) for v in text.split(","))
        else:
            settings[key.replace("-", "_")] = value(text)
    return settings


def config_overrides(settings: dict) -> dict:
    """The settings that go to ``make_config`` (config fields and hyperparameters)."""
    return {k: v for k, v in settings.items() if k not in SCRIPT_KEYS}


def summarise(values) -> dict:
    """Count, finite count, IQM, mean, min and max of per-run final returns (NaN: no episode
    ended in the final window), and the values themselves (NaN as null)."""
    import numpy as np

    from pgjax.analysis import iqm

    values = np.asarray(values, np.float64).ravel()
    finite = values[np.isfinite(values)]
    stats = {"iqm": iqm(finite), "mean": finite.mean(), "min": finite.min(),
             "max": finite.max()} if finite.size else dict.fromkeys(("iqm", "mean", "min", "max"))
    return {"count": int(values.size), "finite": int(finite.size),
            **{k: None if v is None else float(v) for k, v in stats.items()},
            "values": [float(v) if math.isfinite(v) else None for v in values]}


def run_train(case: Case, settings: dict, num_chunks: int) -> dict:
    """``pgjax.train`` of the case's config over ``seeds`` seeds (every device, no files)."""
    import pgjax

    config = pgjax.make_config(settings["algo"], settings["env"], **config_overrides(settings))
    result = pgjax.train(config, seeds=settings["seeds"], num_chunks=num_chunks,
                         progress=False, checkpoint=False)
    s = result.summary
    return {"algo": config.algo, "env": config.env_id, "runs": settings["seeds"],
            "env_steps": settings["seeds"] * s["env_steps_per_seed"],
            "compile_seconds": s["compile_seconds"], "run_seconds": s["run_seconds"],
            "steps_per_second": s["steps_per_second"],
            "final_return": summarise(s["final_return"]), "config": config.to_dict()}


def run_sweep(case: Case, settings: dict, num_chunks: int) -> dict:
    """``pgjax.sweep`` of ``algos`` × ``learning_rates`` × ``seeds`` (one group per algo),
    into a temporary directory; compile seconds, steps/s and final returns per group."""
    import numpy as np

    import pgjax
    from pgjax.engine import final_returns

    spec = {"algos": list(settings["algos"]), "envs": [settings["env"]],
            "seeds": settings["seeds"], "grid": {"learning_rate": list(settings["learning_rates"])},
            "set": config_overrides(settings), "num_chunks": num_chunks, "checkpoint": False,
            "metrics": ["episodic_return"]}
    with tempfile.TemporaryDirectory() as out:
        result = pgjax.sweep(spec, out=out, progress=False)
    groups = []
    for g in result.groups:
        flat = {k: np.reshape(v, (-1, v.shape[-1])) for k, v in g.metrics.items()}
        r = g.record
        groups.append({"id": r["id"], "algo": r["algo"], "runs": r["runs"],
                       "env_steps": r["runs"] * r["env_steps_per_run"],
                       "compile_seconds": r["compile_seconds"], "run_seconds": r["run_seconds"],
                       "steps_per_second": r["steps_per_second"],
                       "final_return": summarise(final_returns(flat))})
    total = {k: sum(g[k] for g in groups) for k in ("runs", "env_steps", "compile_seconds",
                                                   "run_seconds")}
    return {"algo": "+".join(settings["algos"]), "env": result.groups[0].record["env"], **total,
            "steps_per_second": total["env_steps"] / total["run_seconds"],
            "final_return": summarise([v for g in groups for v in g["final_return"]["values"]]),
            "groups": groups, "spec": result.manifest["spec"]}


def run_meta(case: Case, settings: dict, num_chunks: int) -> dict:
    """One ``pgjax.meta`` generation: ask the ES for ``population`` members, evaluate them
    and the ES mean × ``inner_seeds`` as one program over every device (its compile and run
    seconds are the case's), tell the ES (``tell_seconds``, its first call's compile in it)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from pgjax import meta

    spec = meta.MetaSpec(algo=settings["algo"], envs=(settings["env"],),
                         set=config_overrides(settings), generations=1,
                         population_size=settings["population"],
                         inner_seeds=settings["inner_seeds"],
                         drift_hidden=settings["drift_hidden"],
                         init_scale=settings["init_scale"], sigma=settings["sigma"],
                         learning_rate=settings["es_learning_rate"],
                         fitness_updates=settings["fitness_updates"])
    config = spec.configs()[0]
    solution = spec.initial_params(config)
    strategy, params = meta.make_strategy(spec, solution)
    state = strategy.init(jax.random.key(spec.seed), solution, params)
    key_ask, key_inner, key_tell = jax.random.split(jax.random.key(1), 3)
    keys = jax.random.split(key_inner, spec.inner_seeds)
    population, state = strategy.ask(key_ask, state, params)
    members = jax.tree.map(lambda p, m: jnp.concatenate([p, m[None]]), population,
                           strategy.get_mean(state))
    evaluate = meta.make_evaluate(config, spec.inner_seeds, meta._fitness_updates(spec, config))
    t0 = time.perf_counter()
    compiled = evaluate.lower(members, keys).compile()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    returns = np.asarray(compiled(members, keys))  # [population + 1, inner_seeds]
    run_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    fitness = returns.mean(axis=1)
    shaped = np.where(np.isnan(fitness[:-1]), np.inf, -fitness[:-1])
    state, _ = strategy.tell(key_tell, population, jnp.asarray(shaped), state, params)
    jax.block_until_ready(state)
    tell_seconds = time.perf_counter() - t0
    runs = returns.size
    env_steps = runs * config.num_updates * config.batch_size
    return {"algo": config.algo, "env": config.env_id, "runs": runs, "env_steps": env_steps,
            "compile_seconds": compile_seconds, "run_seconds": run_seconds,
            "steps_per_second": env_steps / run_seconds, "final_return": summarise(returns),
            "population": spec.population_size, "inner_seeds": spec.inner_seeds,
            "es_mean_return": summarise(fitness[-1:])["mean"], "tell_seconds": tell_seconds,
            "spec": spec.to_dict()}


RUNNERS = {"train": run_train, "sweep": run_sweep, "meta": run_meta}


def env_steps(settings: dict, kind: str) -> int:
    """A case's env steps over all runs, from its settings (for the projection)."""
    if kind == "meta":
        runs = (settings["population"] + 1) * settings["inner_seeds"]
    elif kind == "sweep":
        runs = settings["seeds"] * len(settings["algos"]) * len(settings["learning_rates"])
    else:
        runs = settings["seeds"]
    return runs * int(settings["total_timesteps"])


def factor(records: list[dict], measured: str, assumed: str) -> float:
    """The median of measured ÷ assumed over the cases that ran (1 before any has)."""
    ratios = sorted(r[measured] / r[assumed] for r in records if r["status"] == "ran")
    return ratios[len(ratios) // 2] if ratios else 1.0


def projected_seconds(plan: list, records: list[dict]) -> float:
    """Seconds the cases in ``plan`` ((case, settings) pairs) are expected to take: assumed
    compile and reference rate, each scaled by what the finished cases measured."""
    compile_scale = factor(records, "compile_seconds", "assumed_compile")
    speed_scale = factor(records, "steps_per_second", "expected_rate")
    return sum(case.assumed_compile * compile_scale
               + env_steps(settings, case.kind) / (case.expected_rate * speed_scale)
               for case, settings in plan)


def fit(case: Case, settings: dict, seconds_left: float, records: list[dict]) -> dict:
    """``settings`` with fewer env steps per run when the case is projected to take more than
    ``seconds_left`` (down to a quarter of them at most; ``fitted_from`` keeps the number set):
    the steps/s figure stays comparable, the run stays within the budget."""
    projected = projected_seconds([(case, settings)], records)
    if projected <= seconds_left or case.kind == "meta":
        return settings
    compile_part = case.assumed_compile * factor(records, "compile_seconds", "assumed_compile")
    share = max(0.25, (seconds_left - compile_part) / (projected - compile_part))
    steps = int(settings["total_timesteps"] * share)
    print(f"{case.name}: projected {projected:.0f} s with {seconds_left:.0f} s of the budget "
          f"left: {int(settings['total_timesteps']):,} → {steps:,} env steps per run "
          "(--no-fit keeps them)", flush=True)
    return {**settings, "total_timesteps": steps, "fitted_from": settings["total_timesteps"]}


def projection(elapsed: float, total: float, budget: float) -> str:
    """The time estimate check, one phrase: elapsed, projected total, and whether it is over
    the budget."""
    note = f"over the {budget:.0f} s budget" if total > budget else f"budget {budget:.0f} s"
    return f"elapsed {elapsed:.0f} s, projected total {total:.0f} s ({note})"


def missing(case: Case) -> str | None:
    """The first module the case needs that is not installed, or None."""
    return next((m for m in case.requires if importlib.util.find_spec(m) is None), None)


def one_line(name: str, r: dict) -> str:
    """The summary line printed as a case finishes."""
    if r["status"] != "ran":
        return f"{name}: {r['status']}: {r['reason']}"
    f = r["final_return"]
    ref = r.get("reference")
    against = f" (reference {ref['steps_per_second'] / 1e6:.2f}M on an A100: " \
              f"×{r['steps_per_second'] / ref['steps_per_second']:.2f})" if ref else ""
    returns = "no episode ended" if not f["finite"] else \
        f"IQM {f['iqm']:.1f}, mean {f['mean']:.1f} [{f['min']:.1f}, {f['max']:.1f}]"
    groups = "".join(f"; {g['algo']}: compile {g['compile_seconds']:.1f} s, "
                     f"{g['steps_per_second']:,.0f} steps/s" for g in r.get("groups", []))
    return (f"{name}: {r['algo']} {r['env']} ×{r['runs']} runs, {r['env_steps']:,} steps: "
            f"compile {r['compile_seconds']:.1f} s, run {r['run_seconds']:.1f} s, "
            f"{r['steps_per_second']:,.0f} steps/s{against}; final return {returns} "
            f"({f['finite']} of {f['count']} runs){groups}")


def header(args, command: str) -> dict:
    """What the results file says about the run: device, versions, command, sizes' mode."""
    import jax

    from pgjax.run_files import git_revision, versions

    device = jax.devices()[0]
    return {"script": "benchmarks/gpu.py", "dry_run": args.dry_run,
            "command": command,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "device": device.device_kind, "platform": device.platform,
            "device_count": jax.device_count(), "devices": [str(d) for d in jax.devices()],
            "jax_version": jax.__version__, "versions": versions(),
            "default_matmul_precision": str(getattr(jax.config, "jax_default_matmul_precision",
                                                    None)),
            "git_revision": git_revision(), "host": platform.node(),
            "budget_seconds": args.budget, "cases": {}}


def default_out(results: dict) -> Path:
    """``benchmarks/results/gpu-<device>-<date>.json`` (a dry run: the temporary folder)."""
    slug = "".join(c if c.isalnum() else "-" for c in results["device"].lower()).strip("-")
    name = f"gpu-{slug}-{results['date'][:10]}.json"
    return Path(tempfile.gettempdir()) / f"dry-run-{name}" if results["dry_run"] else \
        RESULTS / name


def write(results: dict, out: Path) -> None:
    """Write the results file atomically (it is rewritten after every case)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    os.replace(tmp, out)


def run_case(case: Case, settings: dict, args, elapsed: float, records: list[dict]) -> dict:
    """Run one case (its steps fitted to the budget left, unless ``--no-fit``), or say why
    not: excluded, a package missing, or projected past ``--deadline``. A failure is recorded
    and the run goes on to the next case."""
    base = {"reference": case.reference, "assumed_compile": case.assumed_compile,
            "expected_rate": case.expected_rate}
    package = missing(case)
    if case.name in args.skip:
        return {**base, "settings": settings, "status": "skipped",
                "reason": "excluded with --skip"}
    if package is not None:
        return {**base, "settings": settings, "status": "skipped",
                "reason": f"needs {package}, not installed"}
    if args.fit and not args.dry_run:
        settings = fit(case, settings, args.budget - elapsed, records)
    end = elapsed + projected_seconds([(case, settings)], records)
    if args.deadline and end > args.deadline:
        return {**base, "settings": settings, "status": "skipped",
                "reason": f"projected to end at {end:.0f} s, past --deadline "
                          f"{args.deadline:.0f} s"}
    t0 = time.perf_counter()
    try:
        measured = RUNNERS[case.kind](case, settings, args.num_chunks)
    except Exception as error:  # noqa: BLE001 — recorded; the other cases still run
        traceback.print_exc()
        return {**base, "settings": settings, "status": "failed",
                "reason": f"{type(error).__name__}: {error}",
                "wall_seconds": time.perf_counter() - t0}
    return {**base, "settings": settings, "status": "ran", **measured,
            "wall_seconds": time.perf_counter() - t0}


def parse(argv: list[str]) -> argparse.Namespace:
    names = [c.name for c in CASES]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="results file (default: benchmarks/results/"
                        "gpu-<device>-<date>.json; a dry run's goes to the temporary folder)")
    parser.add_argument("--dry-run", action="store_true",
                        help="every case with tiny sizes, on whatever device JAX has")
    parser.add_argument("--only", nargs="+", choices=names, default=names, metavar="CASE")
    parser.add_argument("--skip", nargs="+", choices=names, default=[], metavar="CASE")
    parser.add_argument("--set", nargs="+", default=[], metavar="CASE.KEY=VALUE",
                        help="a case's setting, e.g. cartpole.seeds=512 hopper.env.backend=spring")
    parser.add_argument("--num-chunks", type=int, default=4, help="jitted chunks per run")
    parser.add_argument("--budget", type=float, default=BUDGET, help="seconds (projection)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="skip the cases projected to end after this many seconds")
    parser.add_argument("--no-fit", dest="fit", action="store_false",
                        help="keep every case's steps even when projected over the budget")
    parser.add_argument("--allow-cpu", action="store_true", help="a full run without a GPU")
    parser.add_argument("--print-device-command", action="store_true")
    args = parser.parse_args(argv)
    for item in args.set:
        if item.split(".", 1)[0] not in names or "=" not in item:
            parser.error(f"--set {item}: expected CASE.KEY=VALUE, CASE one of {', '.join(names)}")
    return args


def main(argv: list[str] | None = None) -> int:
    called_as_script = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    if args.print_device_command:
        print(DEVICE_COMMAND)
        return 0
    start = time.perf_counter()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # this checkout's pgjax, installed or not
    import pgjax

    pgjax.use_host_devices()  # CPU (a dry run): one device per core; accelerators as they are
    import jax

    if not args.dry_run and jax.default_backend() == "cpu" and not args.allow_cpu:
        print("gpu.py: JAX found no GPU (backend cpu); --dry-run for the plumbing, "
              "--allow-cpu to run the full sizes anyway")
        return 2
    results = header(args, shlex.join(sys.orig_argv) if called_as_script else
                     shlex.join(["benchmarks/gpu.py", *argv]))
    out = args.out or default_out(results)
    plan = [(c, case_settings(c, args.dry_run, args.set)) for c in CASES if c.name in args.only]
    to_run = [(c, s) for c, s in plan if c.name not in args.skip and missing(c) is None]
    records: list[dict] = []
    print(f"{results['device']} ×{results['device_count']}, jax {results['jax_version']}; "
          f"{len(to_run)} of {len(plan)} cases to run; "
          f"{projection(0.0, projected_seconds(to_run, records), args.budget)}; results → {out}",
          flush=True)
    for case, settings in plan:
        record = run_case(case, settings, args, time.perf_counter() - start, records)
        records.append(record)
        results["cases"][case.name] = record
        results["elapsed_seconds"] = time.perf_counter() - start
        later = [(c, s) for c, s in to_run if c.name not in results["cases"]]
        results["projected_seconds"] = results["elapsed_seconds"] + projected_seconds(later,
                                                                                    records)
        write(results, out)
        print(one_line(case.name, record), flush=True)
        print("  " + projection(results["elapsed_seconds"], results["projected_seconds"],
                               args.budget), flush=True)
    print(f"results: {out}")
    return 1 if any(r["status"] == "failed" for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
