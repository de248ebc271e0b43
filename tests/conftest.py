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
_CACHE = tempfile.mkdtemp(prefix="pgjax-tests-xla-cache-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
os.environ["PGJAX_COMPILE_CACHE"] = _CACHE  # the CLI's cache, when a test runs it
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
