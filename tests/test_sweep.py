"""Sweeps: grouping by program shape, one compile per group, sharding, resume, multi-process."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import pgjax
import pgjax.engine as engine_module
from pgjax.checkpoint import Checkpointer
from pgjax.sweeps import load_spec, make_groups, run_group

TINY = dict(num_steps=32, num_epochs=2, num_minibatches=4, total_timesteps=4 * 32 * 6)
SPEC = dict(algos=["ppo"], envs=["CartPole-v1"], seeds=2, set=TINY, num_chunks=2,
            grid={"learning_rate": [1e-3, 3e-3], "num_envs": [4, 8]})
ROOT = Path(__file__).resolve().parent.parent


class _CountTraces:
    """Counts how often the sweep builds a trainer, i.e. traces a program."""

    def __init__(self):
        self.calls = 0
        self.original = engine_module.make_trainer

    def __call__(self, config):
        self.calls += 1
        return self.original(config)

    def __enter__(self):
        engine_module.make_trainer = self
        return self

    def __exit__(self, *exc):
        engine_module.make_trainer = self.original


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    with _CountTraces() as traces:
        result = pgjax.sweep(SPEC, out=out, progress=False, sinks=["tensorboard"])
    return out, result, traces.calls


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_spec_points_are_list_entries_times_grid():
    spec = load_spec(algos="ppo", envs="CartPole-v1", grid={"gamma": [0.9, 0.99]},
                     list=[{"learning_rate": 1e-3}, {"learning_rate": 1e-4}])
    assert spec.points() == [{"learning_rate": 1e-3, "gamma": 0.9},
                             {"learning_rate": 1e-3, "gamma": 0.99},
                             {"learning_rate": 1e-4, "gamma": 0.9},
                             {"learning_rate": 1e-4, "gamma": 0.99}]
    assert spec.swept() == ["learning_rate", "gamma"]
    with pytest.raises(ValueError, match="^sweep: unknown spec key 'grids'"):
        load_spec(algos="ppo", envs="CartPole-v1", grids={})
    with pytest.raises(ValueError, match="^learning_rate"):
        make_groups(load_spec(algos="ppo", envs="CartPole-v1", grid={"learning_rate": [-1]}))


@pytest.mark.slow
def test_static_hyperparameters_split_groups_and_each_compiles_once(swept):
    _, result, traces = swept
    groups = result.groups
    assert [g.group.configs[0].num_envs for g in groups] == [4, 8]
    assert all(len(g.group.configs) == 2 and g.record["runs"] == 4 for g in groups)
    # One init program and one chunk program per group, each traced once for all 4 runs.
    assert traces == 2 * len(groups)
    assert all(g.record["chunks"] == 2 for g in groups[:1])


def test_result_files(swept):
    out, _, _ = swept
    rows = _read(out / "results.csv")
    assert list(rows[0])[:10] == ["group", "algo", "env", "seed", "learning_rate", "num_envs",
                                  "update", "env_steps", "metric", "value"]
    metrics = len(pgjax.METRICS) - 1
    updates = [6, 3]  # 768 steps at 4 and at 8 envs × 32 steps
    assert len(rows) == sum(4 * u * metrics for u in updates)
    finals = _read(out / "final.csv")
    assert len(finals) == 8 and {r["learning_rate"] for r in finals} == {"0.001", "0.003"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["grid"]["num_envs"] == [4, 8]
    assert {"jax", "numpy"} <= set(manifest["versions"]) and manifest["devices"]
    assert "git_revision" in manifest
    for record in manifest["groups"]:
        assert record["compile_seconds"] > 0 and record["run_seconds"] > 0
        assert record["status"] == "ran"


def test_each_run_equals_make_train_for_its_config_and_seed(swept):
    _, result, _ = swept
    group = result.groups[0]
    config = group.group.configs[1]  # learning rate 3e-3
    key = jax.random.split(jax.random.key(0), 2)[1]  # seed 1, as `pgjax train --seeds 2`
    _, metrics = jax.jit(pgjax.make_train(config))(key)
    for name in ("value_loss", "policy_loss", "episodes"):
        np.testing.assert_allclose(group.metrics[name][1, 1], metrics[name], rtol=1e-4,
                                   atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_sharded_equals_unsharded(swept):
    if len(jax.devices()) < 2:
        pytest.skip("needs two local devices (pgjax asks XLA for one per CPU core)")
    _, result, _ = swept
    sharded = result.groups[0]
    assert len(sharded.record["devices"]) == 2
    single = run_group(sharded.group, num_chunks=3, devices=jax.devices()[:1])
    assert len(single.record["devices"]) == 1
    for name in pgjax.METRICS:
        np.testing.assert_allclose(sharded.metrics[name], single.metrics[name], rtol=1e-5,
                                   atol=1e-6, err_msg=name)


def test_resume_skips_finished_groups(swept, tmp_path):
    out, first, _ = swept
    results_before = (out / "results.csv").read_text()
    with _CountTraces() as traces:
        again = pgjax.sweep(SPEC, out=out, progress=False)
    assert traces.calls == 0
    assert [g.record["status"] for g in again.groups] == ["resumed", "resumed"]
    assert (out / "results.csv").read_text() == results_before
    # An unfinished group (no group.json) runs again; the finished one is skipped.
    copy = tmp_path / "copy"
    (copy / "groups").mkdir(parents=True)
    for g in first.groups:
        src = out / "groups" / g.group.id
        dst = copy / "groups" / g.group.id
        dst.mkdir()
        for name in ("metrics.csv", "final.csv", "group.json"):
            (dst / name).write_bytes((src / name).read_bytes())
    (copy / "groups" / first.groups[1].group.id / "group.json").unlink()
    with _CountTraces() as traces:
        resumed = pgjax.sweep(SPEC, out=copy, progress=False)
    assert traces.calls == 2
    assert [g.record["status"] for g in resumed.groups] == ["resumed", "ran"]
    np.testing.assert_array_equal(resumed.groups[1].metrics["value_loss"],
                                  first.groups[1].metrics["value_loss"])


@pytest.mark.slow
def test_two_processes_joined_by_jax_distributed_match_one_process(swept, tmp_path):
    """``pgjax sweep`` in two processes (one host device each) on 127.0.0.1 writes the results
    the single-process sweep wrote for the same group."""
    out, result, _ = swept
    spec = {**SPEC, "grid": {"learning_rate": [1e-3, 3e-3], "num_envs": [4]}}
    import yaml

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    # --local-processes 2 starts two `pgjax sweep ... --coordinator 127.0.0.1:PORT
    # --num-processes 2 --process-id i` with PGJAX_HOST_DEVICES=1.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pgjax", "sweep", str(tmp_path / "spec.yaml"), "--quiet",
         "--out", str(tmp_path / "dist"), "--local-processes", "2"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote" in proc.stdout
    manifest = json.loads((tmp_path / "dist" / "manifest.json").read_text())
    assert manifest["processes"] == 2 and len(manifest["groups"][0]["devices"]) == 2
    group = result.groups[0].group.id
    # Process 0 alone wrote the group's final checkpoint (the default options).
    assert Checkpointer(tmp_path / "dist" / "groups" / group / "checkpoints").steps() == [6]
    dist = _read(tmp_path / "dist" / "groups" / group / "metrics.csv")
    single = _read(out / "groups" / group / "metrics.csv")
    assert len(dist) == len(single)
    for a, b in zip(dist, single):
        assert {k: a[k] for k in a if k != "value"} == {k: b[k] for k in b if k != "value"}
        np.testing.assert_allclose(float(a["value"]), float(b["value"]), rtol=1e-4, atol=1e-5,
                                   equal_nan=True, err_msg=str(a))


def test_pgjax_plot_writes_non_empty_images(swept, tmp_path, capsys):
    from pgjax.cli import main

    out, _, _ = swept
    assert main(["plot", str(out), "--out", str(tmp_path)]) == 0
    for name in ("curves.png", "final.png", "aggregate.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    summary = _read(tmp_path / "summary.csv")
    methods = {r["method"] for r in summary}
    assert len(methods) == 4  # 2 learning rates × 2 num_envs
    for row in summary:
        assert float(row["ci_low"]) <= float(row["iqm"]) <= float(row["ci_high"])
    assert "wrote" in capsys.readouterr().out


def test_tensorboard_sink_writes_one_run_per_seed(swept):
    out, result, _ = swept
    pytest.importorskip("tensorboardX")
    runs = sorted(p.parent.relative_to(out / "tensorboard").as_posix()
                  for p in (out / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(runs) == 8  # 2 groups × 2 learning rates × 2 seeds
    group = result.groups[0].group.id
    assert f"{group}/ppo-learning_rate=0.003-num_envs=4-seed1" in runs


def test_sinks_are_not_imported_when_off():
    code = ("import sys, pgjax, pgjax.sweeps, pgjax.analysis; "
            "print([m for m in ('tensorboardX', 'wandb', 'pgjax.sinks', 'matplotlib') "
            "if m in sys.modules])")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
