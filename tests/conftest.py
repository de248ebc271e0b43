# One XLA CPU device per core for the tests (before the first JAX computation), as the CLI
# and the benchmarks do: seeded runs split across them.
import os
import tempfile

import jax

import pgjax

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
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


# The files that take longest (seconds on a 2-core CPU, 2026-12-06) run first, so that the
# pytest-xdist workers finish together instead of one waiting on a long file picked up last.
LONGEST_FIRST = ("test_learning.py", "test_playground.py", "test_recurrent.py",
                 "test_recorded.py", "test_notebooks.py", "test_training.py", "test_sweep.py",
                 "test_meta.py", "test_craftax.py", "test_notebook.py", "test_gpu_script.py",
                 "test_video.py", "test_engine.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
