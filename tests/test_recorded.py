"""Every registered algorithm trains exactly as recorded: two updates on CartPole-v1 at seeds 0
and 1 give bit-identical metrics and final parameters to ``tests/data/recorded.json``.

The file pins the engine across refactors: a change that moves any bit of any algorithm's
training fails here. XLA's CPU code depends on the processor, the jax version and the LLVM
optimisation level, so the exact comparison runs where the file was recorded (same jax, same
CPU model and vector width, the tests' XLA settings of tests/conftest.py); on another machine
the first update's metrics are compared to within float32 rounding instead.

Re-record only for a deliberate change of the numbers (say why in the commit):
``python tests/test_recorded.py --record``.
"""

import concurrent.futures
import hashlib
import json
import os
import platform
import re
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import pgjax
from pgjax import drifts

pytestmark = pytest.mark.slow  # the quick subset (-m "not slow") leaves this file out

RECORDED = Path(__file__).parent / "data" / "recorded.json"
TINY = dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=2, total_timesteps=4 * 32 * 2,
            actor_hidden=(16, 16), critic_hidden=(16, 16))
SEEDS = (0, 1)
#: The registered algorithms when the file was recorded; "mirror" with SPO's drift.
ALGOS = ("dpo", "fixpo", "lpo", "lpo_cartpole", "mdpo", "mirror", "ppo", "spo", "talpo", "trpo")


def machine() -> dict:
    """What XLA's CPU code depends on: the jax version, the processor and its widest vectors."""
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if
                  line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in _cpuinfo() if
                  line.startswith("flags")), [])
    level = re.search(r"--xla_backend_optimization_level=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return {"jax": jax.__version__, "cpu": model, "avx512f": "avx512f" in flags,
            "machine": platform.machine(), "llvm_opt_level": level[1] if level else "default",
            "disable_most_optimizations": bool(jax.config.read("jax_disable_most_optimizations"))}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def train(algo: str) -> dict:
    """Metrics ``[seed, update]`` and a digest of the final parameters of each seed."""
    extra = {"drift": drifts.spo} if algo == "mirror" else {}
    config = pgjax.make_config(algo, "CartPole-v1", **TINY, **extra)
    keys = jax.vmap(jax.random.key)(np.asarray(SEEDS))
    state, metrics = jax.jit(jax.vmap(pgjax.make_train(config)))(keys)
    digests = []
    for seed in range(len(SEEDS)):
        leaves = jax.tree.leaves(jax.tree.map(lambda x: np.asarray(x[seed]), state.params))
        digests.append(hashlib.sha256(b"".join(x.tobytes() for x in leaves)).hexdigest())
    return {"metrics": {k: np.asarray(v, np.float64).tolist() for k, v in metrics.items()},
            "params_sha256": digests}


@pytest.fixture(scope="module")
def recorded():
    return json.loads(RECORDED.read_text())


@pytest.fixture(scope="module")
def trained():
    """Every algorithm's run, two at a time (XLA compiles outside the GIL: one per core)."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return dict(zip(ALGOS, pool.map(train, ALGOS)))


def test_recorded_algorithms_are_all_registered(recorded):
    assert set(recorded["runs"]) == set(ALGOS)
    assert set(ALGOS) <= set(pgjax.ALGORITHMS)


@pytest.mark.parametrize("algo", ALGOS)
def test_algorithm_trains_as_recorded(recorded, trained, algo):
    want, got = recorded["runs"][algo], trained[algo]
    assert sorted(got["metrics"]) == sorted(want["metrics"])
    if recorded["machine"] == machine():
        for name, values in want["metrics"].items():
            np.testing.assert_array_equal(np.asarray(got["metrics"][name]), np.asarray(values),
                                          err_msg=name)
        assert got["params_sha256"] == want["params_sha256"]
    else:  # another CPU or jax: the first update, before rounding differences compound
        for name, values in want["metrics"].items():
            np.testing.assert_allclose(np.asarray(got["metrics"][name])[:, 0],
                                       np.asarray(values)[:, 0], rtol=1e-3, atol=1e-5,
                                       err_msg=name)


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit(__doc__)
    import conftest  # noqa: F401  (the tests' XLA settings, before the first computation)

    RECORDED.parent.mkdir(exist_ok=True)
    runs = {algo: train(algo) for algo in ALGOS}
    RECORDED.write_text(json.dumps({"machine": machine(), "config": TINY, "seeds": SEEDS,
                                    "runs": runs}, indent=1) + "\n")
    print(f"wrote {RECORDED}: {', '.join(runs)} on {machine()}")
