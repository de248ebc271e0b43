"""Using every CPU core: one XLA host device per core, asked for before JAX starts.

On CPU one XLA program runs on about one core, so pgjax splits seeds (and sweep runs) across
*host devices*. JAX makes one CPU device unless ``XLA_FLAGS`` asks for more before its first
computation; ``import pgjax`` changes nothing, and a Python user opts in with one call::

    import pgjax
    pgjax.use_host_devices()   # before the first JAX computation: one CPU device per core

The ``pgjax`` command line, the benchmarks and the test suite make this call at start. GPUs and
TPUs are used as they are: the flags only concern the CPU platform.
"""

from __future__ import annotations

import functools
import os
import re
import warnings

_COUNT_FLAG = "--xla_force_host_platform_device_count"
# XLA's concurrency-optimised CPU scheduler deadlocks (0% CPU, no progress) vmapped training
# programs on jax 0.10.2. Measured on a 2-core CPU with XLA_FLAGS="": `pgjax.train(config,
# seeds=2)` on one device hung in 6 runs of 6, and so did `jax.jit(jax.vmap(make_train(c)))`
# over 2 keys; the same flag as a per-program `compiler_options` did not help (the CPU client
# reads it when JAX starts). use_host_devices turns it off; make_trainer warns while it is on.
_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def _jax_started() -> bool:
    """Whether JAX has created its backends (after which ``XLA_FLAGS`` is not read again)."""
    try:
        from jax._src import xla_bridge
    except ImportError:  # a jax without this module: assume the worst
        return True
    return bool(xla_bridge.backends_are_initialized())


def use_host_devices(count: int | None = None) -> int:
    """Ask XLA for ``count`` CPU devices (default: ``PGJAX_HOST_DEVICES``, else one per core)
    and turn off the CPU scheduler that deadlocked vmapped runs; returns the count asked for.

    Call it before the first JAX computation. Without ``count``, a count already in
    ``XLA_FLAGS`` is kept. Once JAX has started the call changes nothing, and warns (one line)
    if JAX's CPU device count differs from the one asked for.

    Example:
      >>> import pgjax
      >>> pgjax.use_host_devices() >= 1
      True
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if count is None and _COUNT_FLAG in flags:  # the user's own choice stands
        count = int(flags.split(_COUNT_FLAG + "=", 1)[1].split()[0])
    elif count is None:
        requested = os.environ.get("PGJAX_HOST_DEVICES")
        count = int(requested) if requested else (os.cpu_count() or 1)
    if _jax_started():
        import jax

        have = jax.local_device_count("cpu") if jax.default_backend() == "cpu" else count
        if have != count:
            warnings.warn(f"pgjax.use_host_devices: JAX already started with {have} CPU "
                          f"device(s); call it before the first JAX computation", stacklevel=2)
        return have
    flags = re.sub(_COUNT_FLAG + r"=\S+", "", flags).strip()
    if _SCHEDULER_FLAG not in flags:
        flags = f"{flags} {_SCHEDULER_FLAG}=false".strip()
    if count > 1:
        flags = f"{flags} {_COUNT_FLAG}={count}"
    os.environ["XLA_FLAGS"] = flags
    return count


@functools.cache
def warn_if_cpu_scheduler_on() -> None:
    """One line, once per process, when JAX runs on CPU with the scheduler that deadlocks
    vmapped training programs (``_SCHEDULER_FLAG``) still on."""
    import jax

    if jax.default_backend() == "cpu" and \
            f"{_SCHEDULER_FLAG}=false" not in os.environ.get("XLA_FLAGS", ""):
        warnings.warn("pgjax: XLA's concurrency-optimised CPU scheduler is on, and vmapped "
                      "training programs (seeds, grids) can hang with it on jax 0.10; call "
                      "pgjax.use_host_devices() before the first JAX computation (or set "
                      f"XLA_FLAGS={_SCHEDULER_FLAG}=false)", stacklevel=3)


def warn_if_one_core(seeds: int) -> None:
    """One line when ``seeds`` runs would share one CPU device of a multi-core machine."""
    import jax

    cores = os.cpu_count() or 1
    if seeds > 1 and cores > 1 and jax.default_backend() == "cpu" and jax.device_count() == 1:
        warnings.warn(f"pgjax: {seeds} seeds on 1 CPU device of a {cores}-core machine; call "
                      "pgjax.use_host_devices() before the first JAX computation to run them "
                      "on every core", stacklevel=3)


def compile_cache_dir() -> str:
    """Where :func:`use_compile_cache` keeps compiled programs by default:
    ``PGJAX_COMPILE_CACHE``, else ``$XDG_CACHE_HOME/pgjax/xla`` (``~/.cache/pgjax/xla``)."""
    if os.environ.get("PGJAX_COMPILE_CACHE"):
        return os.environ["PGJAX_COMPILE_CACHE"]
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "pgjax", "xla")


def use_compile_cache(path: str | None = None, min_compile_seconds: float = 1.0) -> str:
    """Keep compiled XLA programs on disk (JAX's persistent compilation cache), so that running
    the same config again loads its programs instead of compiling them; returns the directory
    (default :func:`compile_cache_dir`). Programs that compiled in under
    ``min_compile_seconds`` are not kept; nothing is evicted (JAX's default: a brax/hopper
    run's programs took 1.8 MB here, a Breakout-MinAtar run's 0.3 MB). The engine's traced
    programs are kept beside them, in ``programs/`` (:mod:`pgjax.programs`: a run of the same
    configuration skips tracing too). The ``pgjax`` command line calls it (its
    ``--no-compile-cache`` does not); call it before the first JAX compilation.

    Example (a script's first lines)::

        import pgjax
        pgjax.use_host_devices()
        pgjax.use_compile_cache()   # ~/.cache/pgjax/xla
    """
    import jax

    path = os.path.abspath(path or compile_cache_dir())
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    from pgjax.programs import use_program_store

    use_program_store(os.path.join(path, "programs"))
    return path


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """``warnings.formatwarning`` for the command line (set by ``pgjax``'s ``main``):
    ``pgjax: warning: MESSAGE`` on one line, without Python's file, line and source line."""
    return f"pgjax: warning: {message}\n"
