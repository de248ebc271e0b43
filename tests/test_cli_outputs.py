"""What the command line prints and writes for a new user: `pgjax plot` on training runs and
sweeps (several at once, --references, one-line refusals), `pgjax train --sinks`, the files
`pgjax train` lists, the sweep's plan, final table and seed note, install hints and the
third-party import noise kept out. One tiny training run and one tiny sweep, shared."""

import contextlib
import csv
import importlib.util
import io
import json
import re
import shutil
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

from pgjax.analysis import iqm
from pgjax.cli import main

ROOT = Path(__file__).resolve().parent.parent
# Episodes cut at 24 steps: every env ends one in each run's last 5% of updates (6 updates of
# 16 steps at 8192 steps, 2 at the sweep's 2048), so every final return (the mean of those
# episodes) is a number, whatever the policy learned.
TINY = ["--total-timesteps", "8192", "--set", "num_envs=4", "num_steps=16",
        "env.max_steps_in_episode=24"]
SPEC = """algos: [ppo]
envs: [CartPole-v1]
seed: 3
grid: {learning_rate: [0.001, 0.003]}
set: {total_timesteps: 2048, num_envs: 4, num_steps: 16, env_kwargs: {max_steps_in_episode: 24}}
num_chunks: 2
"""


def _run(argv):
    """``(exit status, stdout, stderr)`` of ``pgjax ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    sinks = ["--sinks", "tensorboard"] if importlib.util.find_spec("tensorboardX") else []
    status, stdout, _ = _run(["train", "ppo", "CartPole-v1", "--seeds", "2", "--out", str(out),
                              "--quiet", *TINY, *sinks])
    assert status == 0
    return out, stdout


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-sweep")
    (root / "spec.yaml").write_text(SPEC)
    out = root / "sweep"
    status, stdout, stderr = _run(["sweep", str(root / "spec.yaml"), "--out", str(out),
                                   "--no-checkpoints"])
    assert status == 0
    return out, stdout, stderr


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


# --- pgjax train ------------------------------------------------------------------------------


def test_train_lists_every_file_it_wrote(trained):
    out, stdout = trained
    line = [s for s in stdout.splitlines() if s.startswith("wrote")][0]
    for name in ("metrics.csv", "summary.json", "curve.png", "policy.msgpack", "checkpoints/"):
        assert name in line and (out / name.rstrip("/")).exists(), name


def test_train_sinks_tensorboard_writes_one_event_file_per_seed(trained):
    pytest.importorskip("tensorboardX")
    out, stdout = trained
    events = sorted((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert [p.parent.name for p in events] == ["ppo-seed0", "ppo-seed1"]
    assert all(p.stat().st_size > 100 for p in events)
    assert "tensorboard/" in stdout


def test_a_missing_sink_package_is_one_line_naming_both_installs(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None
                        if name in ("tensorboardX", "wandb") else find_spec(name, *a))
    status, _, stderr = _run(["train", "ppo", "CartPole-v1", "--out", str(tmp_path / "run"),
                              "--quiet", *TINY, "--sinks", "tensorboard"])
    assert status == 2 and stderr.count("\n") == 1
    assert 'pip install "pgjax[tensorboard]"' in stderr and '.[tensorboard]"' in stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


# --- pgjax plot -------------------------------------------------------------------------------


def test_plot_a_training_run(trained, tmp_path):
    out, _ = trained
    status, stdout, _ = _run(["plot", str(out), "--out", str(tmp_path)])
    assert status == 0
    for name in ("curves.png", "final.png", "aggregate.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    rows = _rows(tmp_path / "summary.csv")
    assert [(r["method"], r["env"], r["runs"]) for r in rows] == [
        ("ppo", "gymnax/CartPole-v1", "2"), ("ppo", "aggregate (normalised)", "2")]
    assert "lowest to highest final return plotted" in stdout  # the normalisation, stated


def test_plot_compares_a_run_and_a_sweep_normalised_by_references(trained, swept, tmp_path):
    (run, _), (sweep, _, _) = trained, swept
    status, stdout, _ = _run(["plot", str(run), str(sweep), "--out", str(tmp_path),
                              "--references", "CartPole-v1=0,500"])
    assert status == 0
    rows = {(r["method"], r["env"]): r for r in _rows(tmp_path / "summary.csv")}
    methods = {m for m, _ in rows}
    assert methods == {"ppo", "ppo learning_rate=0.001", "ppo learning_rate=0.003"}
    final = json.loads((run / "summary.json").read_text())["final_return"]
    assert float(rows["ppo", "aggregate (normalised)"]["iqm"]) == pytest.approx(
        float(iqm(np.array(final) / 500)), rel=1e-4)
    assert "CartPole-v1 0 to 500 (reference)" in stdout


def test_plot_tells_two_runs_of_one_algorithm_apart(trained, tmp_path):
    run, _ = trained
    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    assert _run(["plot", str(run), str(other), "--out", str(tmp_path / "plots")])[0] == 0
    methods = {r["method"] for r in _rows(tmp_path / "plots" / "summary.csv")}
    assert methods == {"ppo (run)", "ppo (other)"}


def test_plot_refuses_anything_else_in_one_line(trained, tmp_path):
    run, _ = trained
    (tmp_path / "empty").mkdir()
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "spec.json").write_text("{}")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    for path, what in [(tmp_path / "empty", "is an empty directory"),
                       (run / "summary.json", "is a file"),
                       (tmp_path / "missing", "does not exist"),
                       (tmp_path / "unfinished", "is a sweep with no results yet"),
                       (tmp_path / "other", "is neither a training run")]:
        status, _, stderr = _run(["plot", str(path)])
        assert status == 2 and stderr.count("\n") == 1, path
        assert stderr.startswith(f"pgjax: error: plot: {path} {what}"), stderr
    status, _, stderr = _run(["plot", str(run), "--references", "Acrobot-v1=0,1"])
    assert status == 2 and "Acrobot-v1 is none of the plotted envs" in stderr


def test_references_from_a_file(tmp_path):
    from pgjax.results import load_references

    (tmp_path / "refs.yaml").write_text("CartPole-v1: [0, 500]\nbrax/ant: {low: -100, high: 6000}")
    assert load_references([str(tmp_path / "refs.yaml"), "Pendulum-v1=-1400,-150"]) == {
        "CartPole-v1": (0.0, 500.0), "brax/ant": (-100.0, 6000.0),
        "Pendulum-v1": (-1400.0, -150.0)}
    with pytest.raises(ValueError, match="^--references: CartPole-v1: low 500 must be below"):
        load_references(["CartPole-v1=500,0"])


# --- pgjax sweep ------------------------------------------------------------------------------


def test_sweep_prints_its_plan_and_a_final_table(swept):
    out, stdout, _ = swept
    assert re.search(r"^sweep: 2 runs \(2 configurations × 1 seed\) in 1 group \(one compile "
                     r"each\) on \d+ devices? \(", stdout, re.M)
    table = stdout[stdout.index("\nconfiguration ") + 1:].splitlines()
    assert table[0].split() == ["configuration", "seeds", "mean", "IQM", "min", "max"]
    finals = {r["learning_rate"]: float(r["final_return"]) for r in _rows(out / "final.csv")}
    for line, lr in zip(table[1:3], ("0.001", "0.003")):
        assert line.startswith(f"ppo CartPole-v1 learning_rate={lr}")
        assert float(line.split()[-4]) == pytest.approx(finals[lr], abs=0.06)


def test_a_spec_with_seed_but_no_seeds_gets_a_note(swept):
    _, _, stderr = swept
    notes = [line for line in stderr.splitlines() if "base seed" in line]
    assert len(notes) == 1 and "seed: 3" in notes[0] and "seeds: N" in notes[0]


# --- extras and messages ----------------------------------------------------------------------


def test_quiet_import_keeps_third_party_noise_out():
    from pgjax.extras import quiet_import

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_import():
            print("Failed to import warp: No module named 'warp'")
            warnings.warn("JAXopt is no longer maintained.", DeprecationWarning)
            warnings.warn("Brax System, piplines and environments are not actively being "
                          "maintained.", UserWarning)
        with pytest.raises(ImportError), quiet_import():
            print("what the failing import said")
            raise ImportError("no module")
    assert out.getvalue() == "" and not caught
    assert err.getvalue() == "what the failing import said\n"  # kept when the import fails


def test_install_hints_work_from_pypi_and_from_a_clone():
    sources = "".join(p.read_text() for p in (ROOT / "pgjax").rglob("*.py"))
    assert "pip install 'pgjax[" not in sources and "pip install -e '." not in sources
    from pgjax.envs.craftax_adapter import INSTALL_HINT

    assert 'pip install "pgjax[craftax]"' in INSTALL_HINT and '-e ".[craftax]"' in INSTALL_HINT


def test_notebooks_have_an_extra_and_say_how_to_install_it():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", d)[0] for d in extras["notebooks"]}
    assert {"jupyter", "matplotlib", "nbclient", "ipykernel"} <= names
    readme = (ROOT / "notebooks" / "README.md").read_text()
    assert 'pip install -e ".[notebooks]"' in readme and 'pip install "pgjax[notebooks]"' in readme
