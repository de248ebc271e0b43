"""Run directories: what one holds, and :func:`resume` — continue whatever it holds.

``pgjax train`` writes ``checkpoints/`` (and, when done, ``summary.json``), ``pgjax sweep``
writes ``spec.json`` first, ``pgjax meta`` writes ``meta.json`` first. :func:`resume` (and
``pgjax resume DIR``) reads which, and continues the run, the sweep or the meta-learning run.
"""

from __future__ import annotations

from pathlib import Path

from pgjax.engine import CHECKPOINT_DIR
from pgjax.meta_files import is_meta_dir
from pgjax.sweeps import is_sweep_dir

__all__ = ["resume", "run_kind"]


def run_kind(out) -> str:
    """``"meta"``, ``"sweep"`` or ``"train"``: what wrote the directory ``out``."""
    if is_meta_dir(out):
        return "meta"
    if is_sweep_dir(out):
        return "sweep"
    if (Path(out) / CHECKPOINT_DIR).is_dir():
        return "train"
    raise ValueError(f"resume: {out} has no readable checkpoint, spec.json or meta.json (a "
                     "directory written by `pgjax train`, `pgjax sweep` or `pgjax meta`)")


def resume(out, **kwargs):
    """Continue what ``out`` holds from its newest good checkpoint: a training run
    (:func:`pgjax.runner.resume_run`, a :class:`~pgjax.runner.RunResult`), a sweep
    (:func:`pgjax.sweeps.resume_sweep`, a :class:`~pgjax.sweeps.SweepResult`) or a
    meta-learning run (:func:`pgjax.meta.resume_meta`, a :class:`~pgjax.meta.MetaResult`);
    ``kwargs`` go to that function (e.g. ``progress=False``)."""
    kind = run_kind(out)
    if kind == "meta":
        from pgjax.meta import resume_meta

        return resume_meta(out, **kwargs)
    if kind == "sweep":
        from pgjax.sweeps import resume_sweep

        return resume_sweep(out, **kwargs)
    from pgjax.runner import resume_run

    return resume_run(out, **kwargs)
