"""``benchmarks/gpu.py``, the prepared GPU run: its ``--dry-run`` runs every case end to end
with tiny sizes on the CPU and writes one results file. The Brax case is left out here (its
compile alone takes 15–50 s on the 2-core CPU); the script's own ``--dry-run`` includes it."""

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the quick subset (-m "not slow") leaves this file out

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu.py"
#: runs per case in a dry run: seeds; sweep 2 algos × 2 learning rates × 2 seeds; meta
#: (population 4 + the ES mean) × 2 inner seeds
DRY_RUNS = {"cartpole": 2, "breakout": 2, "sweep": 8, "meta": 10}


def load_script():
    spec = importlib.util.spec_from_file_location("pgjax_gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def check_measured(name: str, case: dict) -> None:
    assert case["status"] == "ran", (name, case.get("reason"))
    assert case["compile_seconds"] > 0 and case["run_seconds"] > 0, name
    assert case["steps_per_second"] > 0, name
    assert abs(case["steps_per_second"] * case["run_seconds"] / case["env_steps"] - 1) < 1e-6
    final = case["final_return"]
    assert final["count"] == len(final["values"]) == case["runs"], name
    finite = [v for v in final["values"] if v is not None]
    assert final["finite"] == len(finite)
    if finite:
        assert final["min"] <= final["iqm"] <= final["max"] and final["min"] == min(finite)


def test_dry_run_writes_every_case(tmp_path):
    out = tmp_path / "results" / "gpu.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--skip", "hopper",
                           "--out", str(out)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    assert results["dry_run"] is True and results["device"] and results["device_count"] >= 1
    assert results["jax_version"] and "gpu.py --dry-run" in results["command"]
    assert list(results["cases"]) == ["cartpole", "breakout", "sweep", "meta", "hopper"]
    for name, runs in DRY_RUNS.items():
        case = results["cases"][name]
        check_measured(name, case)
        assert case["runs"] == runs, name
        assert f"\n{name}: " in "\n" + done.stdout, name  # its summary line
    for name in ("cartpole", "breakout"):
        assert results["cases"][name]["reference"]["steps_per_second"] > 0
    groups = results["cases"]["sweep"]["groups"]
    assert [g["algo"] for g in groups] == ["ppo", "spo"]
    for group in groups:
        check_measured("sweep group", {**group, "status": "ran"})
    hopper = results["cases"]["hopper"]
    assert hopper["status"] == "skipped" and "--skip" in hopper["reason"]
    assert "projected total" in done.stdout


def test_a_missing_package_skips_its_case(tmp_path):
    gpu = load_script()
    gpu.CASES = tuple(dataclasses.replace(c, requires=(*c.requires, "pgjax_no_such_package"))
                      if c.name == "meta" else c for c in gpu.CASES)
    out = tmp_path / "gpu.json"
    assert gpu.main(["--dry-run", "--only", "meta", "--out", str(out)]) == 0
    case = json.loads(out.read_text())["cases"]["meta"]
    assert case["status"] == "skipped" and "pgjax_no_such_package" in case["reason"]


def test_settings_and_the_budget_fit():
    gpu = load_script()
    cases = {c.name: c for c in gpu.CASES}
    sets = ["cartpole.seeds=3", "cartpole.num_envs=8", "cartpole.total_timesteps=1e6",
            "hopper.env.backend=spring", "sweep.learning_rates=1e-3,2e-3"]
    cartpole = gpu.case_settings(cases["cartpole"], False, sets)
    assert cartpole["seeds"] == 3 and cartpole["num_envs"] == 8
    assert cartpole["total_timesteps"] == 1_000_000 and cartpole["num_steps"] == 128
    assert gpu.case_settings(cases["hopper"], True, sets)["env_kwargs"] == {"backend": "spring"}
    assert gpu.case_settings(cases["sweep"], False, sets)["learning_rates"] == (1e-3, 2e-3)
    hopper = gpu.case_settings(cases["hopper"], False, [])
    full = gpu.projected_seconds([(cases["hopper"], hopper)], [])
    assert gpu.fit(cases["hopper"], hopper, full + 1, []) is hopper
    fitted = gpu.fit(cases["hopper"], hopper, full / 2, [])
    assert fitted["fitted_from"] == 1_000_000
    assert 250_000 <= fitted["total_timesteps"] < 1_000_000
    assert gpu.projected_seconds([(cases["hopper"], fitted)], []) <= full / 2 + 1
