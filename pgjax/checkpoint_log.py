"""The checkpoint library's messages go to a log file in the run directory, not the terminal.

orbax reports a failed read or write through ``absl`` logging (an ERROR record with a
traceback per background thread), and the storage layer's callbacks that complete after orbax
closed its event loop raise ``RuntimeError('Event loop is closed')``, which Python prints as an
"unraisable" exception — 8 to 110 lines of tracebacks around the one line pgjax has to say
about a damaged or unwritable checkpoint. :func:`route_to` sends both to a log file instead
(``checkpoints.log`` beside a run's ``checkpoints/``): pgjax's own warning or error stays the
only line on the terminal, and the details stay on disk. Records of other libraries and other
unraisable exceptions are left alone.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path

__all__ = ["LogRoute", "route_to"]

_ABSL = "absl"
#: The log files of the open checkpointers, newest last (orbax's records go to the newest).
_open: list[Path] = []
#: The log file of the checkpointer that routed last (late callbacks have no other address).
_last: list[Path | None] = [None]
_previous_hook: list = []


def _append(path: Path | None, text: str) -> None:
    if path is None:
        return
    try:
        with open(path, "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    except OSError:  # a read-only or full disk: the details are dropped, quietly
        pass


class _ToFile(logging.Filter):
    """A filter on the ``absl`` logger: while a checkpointer is open, orbax's records are
    appended to its log file and dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "orbax" not in record.pathname or not _open:
            return True
        text = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {record.levelname} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        _append(_open[-1], text)
        return False


_FILTER = _ToFile()


def _unraisable(unraisable) -> None:
    error = unraisable.exc_value
    if isinstance(error, RuntimeError) and "Event loop is closed" in str(error):
        _append(_last[0], "unraisable: " + "".join(
            traceback.format_exception(type(error), error, unraisable.exc_traceback)))
        return
    (_previous_hook[0] if _previous_hook else sys.__unraisablehook__)(unraisable)


class LogRoute:
    """An installed route (:func:`route_to`); :meth:`close` ends it."""

    def __init__(self, path: Path):
        self.path = path
        _open.append(path)
        _last[0] = path
        logger = logging.getLogger(_ABSL)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        if sys.unraisablehook is not _unraisable:  # once per process, kept: callbacks are late
            _previous_hook[:] = [sys.unraisablehook]
            sys.unraisablehook = _unraisable

    def close(self) -> None:
        if self.path in _open:
            _open.reverse()  # remove this route's newest entry
            _open.remove(self.path)
            _open.reverse()


def route_to(path) -> LogRoute:
    """Route orbax's log records (until :meth:`LogRoute.close`, to the newest open route) and
    late event-loop errors (from now on, to the newest route) to the file ``path``, created on
    the first message."""
    return LogRoute(Path(path))
