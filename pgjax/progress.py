"""What the host engine shows while it works: a ``compiling …`` line while a batch's programs
compile, then a progress bar of env steps with the latest episodic return."""

from __future__ import annotations

import contextlib
import sys
import threading
import time

import numpy as np

__all__ = ["compiling", "latest_return", "progress_bar"]


@contextlib.contextmanager
def compiling(label: str, show: bool):
    """``compiling LABEL …`` on stderr while a batch's programs compile (on a terminal with the
    seconds so far, each second), then the seconds it took: no silent minutes before the
    progress bar (a Brax env compiles for minutes on a CPU)."""
    if not show:
        yield
        return
    start, stream, stop = time.perf_counter(), sys.stderr, threading.Event()
    live = stream.isatty()

    def tick():
        while not stop.wait(1.0):
            stream.write(f"\rcompiling {label} … {time.perf_counter() - start:.0f} s")
            stream.flush()

    if live:
        threading.Thread(target=tick, daemon=True).start()
    else:
        stream.write(f"compiling {label} …\n")
    try:
        yield
    finally:
        stop.set()
        elapsed = time.perf_counter() - start
        stream.write(f"\rcompiling {label} … {elapsed:.1f} s\n" if live
                     else f"compiled {label} in {elapsed:.1f} s\n")
        stream.flush()


def progress_bar(progress: bool, total: int, initial: int, label: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True,
                desc=label)


def latest_return(metrics: dict) -> float:
    latest = metrics["episodic_return"][:, -1]
    return float(np.nanmean(latest)) if np.isfinite(latest).any() else float("nan")
