"""The learning suite: every registered algorithm on the benchmark envs, as one pgjax sweep,
then its plots and a table of final-return IQM and 95% bootstrap CI per algorithm × env.

Profiles (env steps per run; seeds):

* ``cpu``: budgets that finish on a 2-core CPU (4 seeds);
* ``gpu``: paper-scale budgets (10 seeds), and the budgets MuJoCo Playground and Craftax
  publish: Playground's DM Control PPO (60M env steps, its tuned Brax-PPO settings — the
  ``playground`` preset, run by the algorithms that have it) on CartpoleBalance and
  CheetahRun, and Craftax-Classic-Symbolic at 1B steps with the Craftax baseline's 1024 envs,
  3 × 512 tanh layers and one fresh world per 16 envs per step;
* ``smoke``: a few updates on CartPole only, to check the script end to end.

    python benchmarks/suite.py --profile cpu [--envs CartPole-v1 ...] [--algos ppo spo ...]
    python benchmarks/suite.py --profile cpu --dry-run     # the runs and groups, nothing trained
    python benchmarks/suite.py --profile cpu --envs Pendulum-v1 --algos mdpo \
        --out /tmp/suite-mdpo --merge-into benchmarks/results/suite-cpu  # re-run one algorithm

Results go to ``benchmarks/results/suite-<profile>/`` (a resumable sweep directory: re-running
skips finished groups) with ``plots/`` and ``table.md``. ``--merge-into DIR`` then puts the
algorithms just run into DIR's tables in place of their earlier rows (after a change to one
algorithm, the others need not train again).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import pgjax

pgjax.use_host_devices()  # before the first JAX computation: one CPU device per core

from pgjax.algorithms import ALGORITHMS  # noqa: E402
from pgjax.analysis import plot_sweep  # noqa: E402
from pgjax.sweeps import load_spec, make_groups  # noqa: E402

ENVS = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0",
        "Breakout-MinAtar", "SpaceInvaders-MinAtar", "brax/inverted_pendulum", "brax/hopper",
        "playground/CartpoleBalance", "playground/CheetahRun",
        "craftax/Craftax-Classic-Symbolic-v1"]

#: env → env steps per run, per profile
BUDGETS = {
    "cpu": {"CartPole-v1": 262_144, "Acrobot-v1": 262_144, "Pendulum-v1": 524_288,
            "MountainCarContinuous-v0": 262_144, "Breakout-MinAtar": 524_288,
            "SpaceInvaders-MinAtar": 524_288, "brax/inverted_pendulum": 262_144,
            "brax/hopper": 262_144},
    "gpu": {"CartPole-v1": 1_000_000, "Acrobot-v1": 1_000_000, "Pendulum-v1": 2_000_000,
            "MountainCarContinuous-v0": 2_000_000, "Breakout-MinAtar": 10_000_000,
            "SpaceInvaders-MinAtar": 10_000_000, "brax/inverted_pendulum": 2_000_000,
            "brax/hopper": 50_000_000, "playground/CartpoleBalance": 60_000_000,
            "playground/CheetahRun": 60_000_000,
            "craftax/Craftax-Classic-Symbolic-v1": 1_000_000_000},
    "smoke": {"CartPole-v1": 8_192},
}
SEEDS = {"cpu": 4, "gpu": 10, "smoke": 2}
#: profile → env → config overrides: on CPU the MinAtar games use the MLP torso (a CNN update
#: costs 8.3× an MLP one on this CPU, benchmarks/README.md), so that the profile finishes
EXTRA = {"cpu": {"Breakout-MinAtar": {"torso": "mlp"}, "SpaceInvaders-MinAtar": {"torso": "mlp"}},
         "gpu": {"playground/CartpoleBalance": {"preset": "playground"},
                 "playground/CheetahRun": {"preset": "playground"},
                 # the Craftax baseline's PPO (its update is the registered preset)
                 "craftax/Craftax-Classic-Symbolic-v1": {
                     "num_envs": 1024, "actor_hidden": (512,) * 3, "critic_hidden": (512,) * 3,
                     "env_kwargs": {"reset_ratio": 16}}}}


def algorithms() -> list[str]:
    """Every registered algorithm that runs without user input (``mirror`` needs a drift)."""
    return [name for name in ALGORITHMS if name != "mirror"]


def specs(profile: str, envs, algos, seeds=None) -> list[dict]:
    """One sweep spec per env (budgets differ per env; each env is its own set of groups); an
    env run with a named preset runs the algorithms that have it."""
    budgets, specs = BUDGETS[profile], []
    for env in envs:
        if env not in budgets:
            continue
        extra = EXTRA.get(profile, {}).get(env, {})
        runs = [a for a in algos if extra.get("preset") in (None, *ALGORITHMS[a].named_presets)]
        if runs:
            specs.append(dict(algos=runs, envs=[env], seeds=seeds or SEEDS[profile],
                              set={"total_timesteps": budgets[env], **extra}, num_chunks=10,
                              metrics=["episodic_return", "episode_length"]))
    return specs


def table(summary_csv: Path) -> str:
    """Markdown: one row per algorithm, one column per env, ``IQM [low, high]``."""
    with open(summary_csv) as f:
        rows = [r for r in csv.DictReader(f) if not r["env"].startswith("aggregate")]
    envs = list(dict.fromkeys(r["env"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["env"]): f"{float(r['iqm']):.1f} [{float(r['ci_low']):.1f}, "
                                     f"{float(r['ci_high']):.1f}]" for r in rows}
    lines = ["| algo | " + " | ".join(e.split("/")[-1] for e in envs) + " |",
             "|---|" + "---|" * len(envs)]
    lines += [f"| {m} | " + " | ".join(cell.get((m, e), "–") for e in envs) + " |"
              for m in methods]
    return "\n".join(lines)


def merge(source: Path, target: Path, algos) -> None:
    """Replace ``algos``' groups and rows in the sweep directory ``target`` by those of
    ``source`` (the same env), and note the replacement in ``target``'s manifest."""
    for name in ("final.csv", "results.csv"):
        old, new = _rows(target / name), _rows(source / name)
        # the new rows where the old ones began, so the tables keep their order
        at = next((i for i, r in enumerate(old) if r["algo"] in algos), len(old))
        kept = [r for r in old if r["algo"] not in algos]
        fields = list(dict.fromkeys([*(kept or new)[0], *new[0]]))
        with open(target / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fields, restval="")
            writer.writeheader()
            writer.writerows(kept[:at] + new + kept[at:])
    manifest = json.loads((target / "manifest.json").read_text())
    records = json.loads((source / "manifest.json").read_text())
    manifest["groups"] = [g for g in manifest["groups"] if g["algo"] not in algos] + \
        records["groups"]
    manifest.setdefault("merged", []).append(
        {"algos": list(algos), "git_revision": records["git_revision"]})
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    for group in (target / "groups").glob("*"):
        if group.name.split("-")[0] in algos:
            shutil.rmtree(group)
    for group in (source / "groups").glob("*"):
        shutil.copytree(group, target / "groups" / group.name,
                        ignore=shutil.ignore_patterns("checkpoints"))


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(BUDGETS), default="cpu")
    parser.add_argument("--envs", nargs="+", default=None)
    parser.add_argument("--algos", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=None, help="default: the profile's")
    parser.add_argument("--out", default=None)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--merge-into", default=None, metavar="DIR",
                        help="put the algorithms run into DIR's tables in place of their rows")
    args = parser.parse_args()
    envs = args.envs or (ENVS if args.profile != "smoke" else list(BUDGETS["smoke"]))
    algos = args.algos or algorithms()
    root = Path(args.out or Path(__file__).parent / "results" / f"suite-{args.profile}")
    for spec in specs(args.profile, envs, algos, args.seeds):
        env = spec["envs"][0]
        out = root / env.replace("/", "-")
        groups = make_groups(load_spec(spec))
        runs = sum(len(g.configs) * g.seeds for g in groups)
        print(f"{env}: {len(groups)} groups, {runs} runs × {spec['set']['total_timesteps']:,} "
              f"steps ({', '.join(spec['algos'])}) → {out}", flush=True)
        if args.dry_run:
            continue
        pgjax.sweep(spec, out=out)
        if args.merge_into:
            out = Path(args.merge_into) / env.replace("/", "-")
            merge(root / env.replace("/", "-"), out, algos)
        plot_sweep(out, reps=5000)
        markdown = table(out / "plots" / "summary.csv")
        (out / "table.md").write_text(markdown + "\n")
        print(markdown, flush=True)
    # the combined table: every env of the profile that has finished so far
    root = Path(args.merge_into) if args.merge_into else root
    summaries = [p for p in (root / e.replace("/", "-") / "plots" / "summary.csv" for e in ENVS)
                 if p.exists()]
    if not args.dry_run and summaries:
        combined = root / "summary.csv"
        lines = [p.read_text().splitlines() for p in summaries]
        combined.write_text("\n".join([lines[0][0]] + [r for f in lines for r in f[1:]]) + "\n")
        (root / "table.md").write_text(table(combined) + "\n")
        print(f"wrote {root / 'table.md'}")


if __name__ == "__main__":
    main()
