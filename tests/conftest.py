# One XLA CPU device per core for the tests (before the first JAX computation), as the CLI
# and the benchmarks do: seeded runs split across them.
import os
import tempfile

import jax
import pytest

import pgjax

# Most tests compile small programs that then run for milliseconds, and the suite's time is
# mostly XLA compiling them. They compile with LLVM's optimisations off (JAX's
# jax_disable_most_optimizations: LLVM -O0, about half the compile time of XLA's default -O2
# and 30% less than -O1 for these programs, but a 500k-step PPO run is ~8× slower); the
# learning runs (marked `learning`) compile at -O1 (XLA_FLAGS below; about 25% less compile
# time than -O2 and, measured on PPO CartPole runs, the same run time). Numbers differ from
# -O2's in the last bits, so tests/data/recorded.json is recorded under these settings (its
# "machine" says so). Subprocesses (the CLI's tests, notebook kernels) inherit both through
# the environment.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=1"
if TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"
jax.config.update("jax_disable_most_optimizations", True)
pgjax.use_host_devices()

# Many tests build the same training program afresh (a new make_trainer closure compiles
# again though its HLO is the same): JAX's persistent compilation cache, in a directory new to
# this test run (so every run starts cold, as CI does), compiles each program once. The
# environment variable carries it to the tests' subprocesses.
_CACHE = os.environ.get("PGJAX_TESTS_XLA_CACHE") or tempfile.mkdtemp(
    prefix="pgjax-tests-xla-cache-")
os.environ["PGJAX_TESTS_XLA_CACHE"] = _CACHE  # one cache for the run's pytest-xdist workers
os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
os.environ["PGJAX_COMPILE_CACHE"] = _CACHE  # the CLI's cache, when a test runs it
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


# The files that take longest (seconds on a 2-core CPU, 2026-12-06) run first, so that the
# pytest-xdist workers finish together instead of one waiting on a long file picked up last.
LONGEST_FIRST = ("test_learning.py", "test_recurrent.py", "test_playground.py",
                 "test_notebooks.py", "test_training.py", "test_sweep.py", "test_recorded.py",
                 "test_meta.py", "test_craftax.py", "test_fixpo.py", "test_notebook.py",
                 "test_video.py", "test_run_faults.py", "test_trpo.py", "test_keys.py",
                 "test_engine.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _learning_runs_compile_optimised(request):
    """A `learning` test's programs compile with LLVM's optimisations (their run time, not
    their compile time, is what they cost)."""
    if request.node.get_closest_marker("learning") is None:
        yield
        return
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", True)
