"""Optional dependencies (the extras of ``pyproject.toml``): the install hint a missing one names,
and :func:`quiet_import`, which keeps a third-party package's import-time noise out of pgjax's
output.

Brax and MuJoCo Playground print or warn when imported or when an env is built: MJX prints
``Failed to import warp: ...`` and ``Failed to import mujoco_warp: ...`` (``print`` to stdout,
where the optional Warp backend is absent: pgjax uses MJX's JAX implementation), jaxopt, which
Brax's generalized backend imports, warns ``JAXopt is no longer maintained``
(``DeprecationWarning``), and Brax's ``mjcf.load`` warns that Brax's pipelines are not actively
maintained (``UserWarning``). None of these concerns a pgjax user.

MJX imports NVIDIA Warp and its Warp backend whenever the ``warp-lang`` package is installed
(it comes with ``mujoco-mjx``): 1.3 of the 1.9 s that importing Brax took on a 2-core CPU.
pgjax runs MJX's JAX implementation only (Warp's breaks vmapped populations), so
:func:`without_warp` imports Brax and Playground with Warp hidden — unless Warp or MJX is
already imported, or ``PGJAX_MJX_WARP=1`` is set (for a process that also uses MJX's Warp
backend itself).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings

__all__ = ["NOISE_WARNINGS", "install_hint", "quiet_import", "without_warp"]

#: Regular expressions of the third-party warning messages :func:`quiet_import` drops.
NOISE_WARNINGS = (
    r"JAXopt is no longer maintained",
    r"Brax System, pip[e]?lines and environments are not actively",
)


def install_hint(extra: str) -> str:
    """The commands that install ``extra``, from PyPI and from a clone of the repository.

    Example:
      >>> from pgjax.extras import install_hint
      >>> install_hint("brax")
      'pip install "pgjax[brax]" (from a clone: pip install -e ".[brax]")'
    """
    return f'pip install "pgjax[{extra}]" (from a clone: pip install -e ".[{extra}]")'


@contextlib.contextmanager
def quiet_import(capture_output: bool = True):
    """Run the block (a third-party import, an env constructor) with the warnings of
    :data:`NOISE_WARNINGS` and every ``DeprecationWarning`` ignored and, if
    ``capture_output``, its stdout and stderr captured: what it printed is written to stderr
    after all if the block raises.

    Example:
      >>> from pgjax.extras import quiet_import
      >>> with quiet_import():
      ...     print("Failed to import warp: no module named warp")
    """
    captured = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for message in NOISE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        if not capture_output:
            yield
            return
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                yield
        except BaseException:
            sys.stderr.write(captured.getvalue())
            raise


@contextlib.contextmanager
def without_warp():
    """Run the block (the first import of MJX, through Brax or Playground) with the ``warp``
    module hidden, so that MJX skips its optional Warp backend (module docstring); Warp itself
    stays importable afterwards. Does nothing when Warp or MJX is already imported or
    ``PGJAX_MJX_WARP=1``."""
    if ("warp" in sys.modules or "mujoco.mjx" in sys.modules
            or os.environ.get("PGJAX_MJX_WARP") == "1"):
        yield
        return
    sys.modules["warp"] = None  # `import warp` raises ImportError
    try:
        yield
    finally:
        if "warp" in sys.modules and sys.modules["warp"] is None:
            del sys.modules["warp"]
