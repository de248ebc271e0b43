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


def configure_host_devices() -> None:
    """Ask XLA for one CPU device per core, unless the user already chose."""
    if "jax" in sys.modules or _FLAG in os.environ.get("XLA_FLAGS", ""):
        return
    requested = os.environ.get("PGJAX_HOST_DEVICES")
    count = int(requested) if requested else (os.cpu_count() or 1)
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}={count}".strip()
