"""Host-device set-up that must happen before jax is imported.

On CPU one XLA program runs on about one core, so pgjax splits seeds across *host devices*, one
per core (``--xla_force_host_platform_device_count``). This module sets that flag in
``XLA_FLAGS`` when pgjax is imported before jax. Set ``PGJAX_HOST_DEVICES=N`` to choose the count
(``1`` leaves XLA's default alone). It changes nothing when jax was imported first, and it only
affects the CPU platform: GPUs and TPUs are used as they are.
"""

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"
# XLA's concurrency-optimised CPU scheduler deadlocked (0% CPU, no progress) on vmapped training
# runs with jax 0.10.2 (measured here: 2 seeds vmapped on one of two host devices). Turn it off.
_SCHEDULER = "--xla_cpu_enable_concurrency_optimized_scheduler"


def configure_host_devices() -> None:
    """Ask XLA for one CPU device per core (unless the user already chose) and turn off the CPU
    scheduler that deadlocked vmapped runs."""
    if "jax" in sys.modules:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if _SCHEDULER not in flags:
        flags = f"{flags} {_SCHEDULER}=false".strip()
    os.environ["XLA_FLAGS"] = flags
    if _FLAG in flags:
        return
    requested = os.environ.get("PGJAX_HOST_DEVICES")
    count = int(requested) if requested else (os.cpu_count() or 1)
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}={count}".strip()
