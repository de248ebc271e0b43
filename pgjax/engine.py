"""The host engine: a batch of runs — configurations of one program shape × seeds — trained as
one compiled program, in jitted chunks of updates, over every device.

:func:`pgjax.train` (one configuration), :func:`pgjax.sweep` (a group of a grid) and the
meta-learner's evaluator (:mod:`pgjax.meta`, through :mod:`pgjax.distributed`) all place their
runs the same way: a leading (configuration × seed) axis, padded with copies of the first runs
to a multiple of the device count and split across the devices. :func:`run_batch` compiles
``init`` and one chunk once, then loops on the host: after each chunk it checks the fault code
(:mod:`pgjax.faults`), hands the metrics to ``on_chunk``, checkpoints when due
(:class:`RunCheckpoints`) and moves the progress bar. Seed ``s`` uses key
``jax.random.split(jax.random.key(seed), seeds)[s]``, so run ``(c, s)`` equals
``make_train(configs[c])(key_s)``, and a batch resumed from a checkpoint ends bit-identical to
an uninterrupted one on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import jax
import numpy as np

from pgjax.checkpoint import (Checkpointer, CheckpointMismatch, CheckpointOptions, from_host,
                              keys_as_data, shape_signature)
from pgjax.config import stack_configs
from pgjax.devices import warn_if_one_core
from pgjax.distributed import (broadcast, global_array, over_runs, padded_order, run_devices,
                               to_host)
from pgjax.faults import NumericalFault, fault_message, first_fault, kept_checkpoint
from pgjax.programs import Program
from pgjax.progress import compiling, latest_return, progress_bar
from pgjax.trainer import make_trainer, metric_names

__all__ = ["CHECKPOINT_DIR", "FINAL_WINDOW", "Batch", "BatchResult", "RunCheckpoints",
           "checkpoint_options", "chunk_length", "final_returns", "join_chunks", "num_chunks_of",
           "placed", "run_batch", "storable"]

#: Where a run directory (a train run, a sweep group) keeps its checkpoints.
CHECKPOINT_DIR = "checkpoints"

#: Share of the last updates whose finished episodes make up a run's final return.
FINAL_WINDOW = 0.05


def chunk_length(num_updates: int, num_chunks: int) -> int:
    """Updates per jitted chunk: the divisor of ``num_updates`` closest to ``num_updates /
    num_chunks`` when one is within a factor 4 of it (every chunk the same length: one
    program), else that target rounded — the last chunk is then shorter (a second program,
    compiled when it is reached), so that an awkward count (a prime number of updates) still
    gets its progress updates and checkpoints. The factor is 4, not less, because a second
    program costs a second compile: CartPole's 500k-step preset is 244 updates, which runs as
    61 chunks of 4 in one program (a factor 2 gave 20 chunks of 12 and a tail of 4, and twice
    the compile time). The divisors come in pairs ``(d, n / d)`` with ``d ≤ √n``, found in
    O(√n) steps."""
    target = num_updates / max(1, num_chunks)
    small = [d for d in range(1, math.isqrt(num_updates) + 1) if num_updates % d == 0]
    divisors = small + [num_updates // d for d in small]
    best = min(divisors, key=lambda d: (abs(math.log(d / target)), d))
    return best if abs(math.log(best / target)) <= math.log(4) else max(1, round(target))


def num_chunks_of(num_updates: int, length: int) -> int:
    """How many chunks of ``length`` updates (the last one possibly shorter) make a run."""
    return -(-num_updates // length)


def final_returns(metrics: dict, window: float = FINAL_WINDOW) -> list[float]:
    """Per run, the mean return of the episodes that ended in the last ``window`` share of
    updates (at least one update); NaN for a run with no finished episode there."""
    count = metrics["episodes"]
    last = max(1, int(round(count.shape[-1] * window)))
    returns = np.nan_to_num(metrics["episodic_return"][:, -last:])
    total = (returns * count[:, -last:]).sum(-1)
    n = count[:, -last:].sum(-1)
    return [float(t / c) if c > 0 else float("nan") for t, c in zip(total, n)]


def join_chunks(chunks: list[dict], names=None) -> dict:
    """Chunks of host metrics (name → ``[runs, length]``) joined along updates, in the order
    of ``names`` (default: the last chunk's)."""
    return {k: np.concatenate([np.asarray(c[k]) for c in chunks], axis=1)
            for k in (names or chunks[-1])}


def checkpoint_options(value, where: str = "checkpoint") -> CheckpointOptions | None:
    """A ``checkpoint`` setting as options, None when off: None or True are the defaults,
    False is off, a dict holds :class:`CheckpointOptions` fields."""
    if value is False:
        return None
    if value is None or value is True:
        return CheckpointOptions()
    if isinstance(value, CheckpointOptions):
        return value
    names = [f.name for f in dataclasses.fields(CheckpointOptions)]
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {value!r} must be false or a mapping of {', '.join(names)}")
    unknown = [k for k in value if k not in names]
    if unknown:
        raise ValueError(f"{where}: unknown option {unknown[0]!r} (known: "
                         f"{', '.join(sorted(names))})")
    return CheckpointOptions(**value)


class RunCheckpoints:
    """A batch's checkpoints in ``directory``: the per-run state (padding dropped, keys as key
    data) and the metrics so far, with ``meta = {"identity": ..., **extra}``; a checkpoint is
    continued only when its identity equals ``identity`` plus the per-run state's shapes.

    Under ``jax.distributed`` every process takes part in gathering the state; process 0
    alone writes and reads the files and broadcasts what it read.
    """

    def __init__(self, directory, options: CheckpointOptions, identity: dict,
                 extra: dict | None = None, required: bool = False):
        self.required = required  #: a resume: no readable checkpoint is an error
        self.writer = jax.process_index() == 0
        self.directory = Path(directory)
        self.checkpointer = Checkpointer(self.directory, options) if self.writer else None
        self.identity = dict(identity)
        self.meta = {"checkpoint": dataclasses.asdict(options), **(extra or {})}
        self.saved = 0

    def restore(self, runs: int, state_like, history_like):
        """``(step, host state [runs, ...], history)`` of the newest good checkpoint, or None;
        ``history_like(step)`` gives placeholders for the broadcast. Raises
        :class:`CheckpointMismatch` naming the first difference (in every process)."""
        like = jax.tree.map(lambda x: jax.ShapeDtypeStruct((runs, *x.shape[1:]), x.dtype),
                            state_like)
        self.identity["state"] = shape_signature(jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), state_like))
        self.meta["identity"] = self.identity
        snapshot, error = None, None
        if self.writer:
            self.checkpointer.remove_temporary()  # what a failed or killed save left behind
            try:
                snapshot = self.checkpointer.restore_latest(like, self.identity)
            except CheckpointMismatch as mismatch:
                error = mismatch
        code = broadcast(np.int32(2 if error else (0 if snapshot is None else 1)))
        if int(code) == 2:
            raise error or CheckpointMismatch("resume: process 0 found the checkpoints to be "
                                              "of a different run; nothing was changed")
        if int(code) == 0:
            if self.required:
                raise ValueError(f"resume: no readable checkpoint in {self.directory}")
            return None
        step = int(broadcast(np.int32(snapshot.step if snapshot else 0)))
        if snapshot is not None:
            host = (jax.tree.map(np.asarray, keys_as_data(snapshot.state)), snapshot.history)
        else:  # placeholders of the right shapes for the broadcast
            host = (jax.tree.map(lambda x: np.zeros(x.shape, x.dtype),
                                 jax.eval_shape(keys_as_data, like)), history_like(step))
        state, history = broadcast(host)
        return step, jax.tree.map(np.asarray, state), {k: np.asarray(v)
                                                       for k, v in history.items()}

    def start(self, step: int) -> None:
        if self.writer:
            self.checkpointer.start(step)

    def maybe_save(self, step: int, runs: int, state, history, final: bool) -> None:
        """Save after ``step`` updates if due (process 0's clock decides for every process);
        ``history()`` gives the metrics so far."""
        due = self.checkpointer.due(step, final) if self.writer else False
        if not bool(broadcast(np.int32(due))):
            return
        host = jax.tree.map(lambda x: np.array(x[:runs]), to_host(keys_as_data(state)))
        if self.writer:
            self.checkpointer.save(step, host, history(), self.meta)
        self.saved += 1

    def keep_newest_only(self) -> None:
        """Wait for the last save, then delete every checkpoint but the newest."""
        if self.writer:
            self.checkpointer.wait()
            manager = self.checkpointer.manager()
            for step in self.checkpointer.steps()[:-1]:
                manager.delete(step)

    def kept(self) -> str:
        return kept_checkpoint(self.checkpointer)

    def close(self, quiet: bool = False) -> None:
        """Wait for the last save and release the writer (``quiet``: ignore a failure, when
        another error is already on its way)."""
        if self.writer:
            self.checkpointer.close(quiet)


@dataclasses.dataclass(frozen=True)
class Batch:
    """Runs of one program shape: every config in ``configs`` (identical static fields) ×
    seeds ``0..seeds-1`` of base ``seed``; run ``i`` is config ``i // seeds``, seed
    ``i % seeds``."""

    configs: tuple
    seeds: int = 1
    seed: int = 0
    name: str = ""  #: the progress bar's label

    @property
    def runs(self) -> int:
        return len(self.configs) * self.seeds

    @property
    def num_updates(self) -> int:
        return self.configs[0].num_updates


@dataclasses.dataclass
class BatchResult:
    state: object  #: the runs' TrainState, leading axis = runs (padding dropped)
    metrics: dict  #: name → host ``[runs, num_updates]``, names as :func:`metric_names`
    devices: list
    padded_runs: int
    chunk_length: int
    compile_seconds: float
    run_seconds: float  #: init and the chunks run here (compiles excluded)
    steps_per_second: float  #: env steps of every run over ``run_seconds``
    resumed_at: int | None  #: the update a checkpoint continued from, None for a fresh start
    checkpoints_written: int


def run_batch(batch: Batch, *, num_chunks: int = 10, devices=None, progress: bool = False,
              on_chunk=None, checkpoints: RunCheckpoints | None = None,
              describe_run=lambda run: f"(run {run})", stopped: str = "training"
              ) -> BatchResult:
    """Train every run of ``batch`` in ``num_chunks`` jitted chunks of equal length.

    ``devices`` default to ``jax.devices()``. ``on_chunk(metrics)`` receives each chunk's
    host metrics (name → ``[runs, length]``). With ``checkpoints``, the state and metrics so
    far are saved between chunks when due, and a batch that finds a checkpoint of its own
    identity continues from it. Unless ``skip_nonfinite``, the first non-finite update raises
    :class:`NumericalFault` (``describe_run(run)`` names the run, ``stopped`` what stopped)
    before its chunk is checkpointed.
    """
    runs, num_updates = batch.runs, batch.num_updates
    if devices is None:
        warn_if_one_core(runs)
    devices = run_devices(runs, devices)
    which = padded_order(runs, len(devices))
    stacked = jax.tree.map(np.asarray, stack_configs(list(batch.configs)))
    key_data = np.asarray(jax.random.key_data(
        jax.random.split(jax.random.key(batch.seed), batch.seeds)))
    configs = jax.tree.map(lambda x: global_array(x[which // batch.seeds], devices), stacked)
    keys = global_array(key_data[which % batch.seeds], devices)
    length = chunk_length(num_updates, num_chunks)

    def init(args):
        config, key = args
        return make_trainer(config).init(jax.random.wrap_key_data(key))

    def chunk_of(steps: int):
        def chunk(args):
            config, state = args
            trainer = make_trainer(config)
            return jax.lax.scan(lambda s, _: trainer.update(s), state, None, length=steps)

        return over_runs(chunk, devices)

    mapped_init = over_runs(init, devices)
    stored = [c.to_dict() for c in batch.configs] if storable(batch.configs) else None

    def program(fn, args, name: str, **donate):  # exported once when the store is on
        return Program(fn, args, None if stored is None else {"program": name, "configs": stored},
                       **donate)

    def chunk_program(steps: int, like):
        mapped = chunk_of(steps)
        return program(lambda c, s: mapped((c, s)), (configs, placed(like, keys)),
                       f"chunk of {steps}", donate_argnums=(1,))

    with compiling(f"{batch.name} ×{runs}", progress):
        t0 = time.perf_counter()
        init_program = program(lambda c, k: mapped_init((c, k)), (configs, keys), "init")
        restored, like = None, init_program.out_shapes()
        chunk = chunk_program(length, like)
        if checkpoints is not None:
            restored = checkpoints.restore(runs, like, lambda step: jax.tree.map(
                lambda v: np.zeros((runs, step), v.dtype), chunk.out_shapes()[1]))
        if restored is None:
            init_fn = init_program.compile()
            compile_seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            state, done, chunks = init_fn(configs, keys), 0, []
        else:  # padded runs are copies of run ``which[i]``, at the same state
            compile_seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            done, host, history = restored
            state = from_host(jax.tree.map(lambda x: global_array(x[which], devices), host), like)
            chunks = [history]
        init_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        chunk_fn = chunk.compile()
        compile_seconds += time.perf_counter() - t0

    steps_per_update = batch.configs[0].batch_size
    bar = progress_bar(progress, runs * num_updates * steps_per_update,
                       runs * done * steps_per_update, f"{batch.name} ×{runs}")
    resumed_at = done if restored is not None else None
    t0, tail_fn, tail_seconds = time.perf_counter(), None, 0.0
    try:
        if checkpoints is not None:
            checkpoints.start(done)
        while done < num_updates:
            steps = min(length, num_updates - done)
            if steps < length and tail_fn is None:  # the last, shorter chunk
                t1 = time.perf_counter()
                tail_fn = chunk_program(steps, like).compile()
                tail_seconds = time.perf_counter() - t1
            state, metrics = (chunk_fn if steps == length else tail_fn)(configs, state)
            chunks.append({k: np.asarray(v)[:runs] for k, v in to_host(metrics).items()})
            fault = None if batch.configs[0].skip_nonfinite else first_fault(chunks[-1])
            if fault is not None:
                update, run, what = fault
                raise NumericalFault(fault_message(
                    what, done + 1 + update, describe_run(run), stopped,
                    checkpoints.kept() if checkpoints is not None else "no checkpoint"))
            done += steps
            if on_chunk is not None:
                on_chunk(chunks[-1])
            if checkpoints is not None:
                checkpoints.maybe_save(done, runs, state, lambda: join_chunks(chunks),
                                       final=done == num_updates)
            if bar is not None:
                bar.update(runs * steps * steps_per_update)
                bar.set_postfix_str(f"return {latest_return(chunks[-1]):.1f}")
        jax.block_until_ready(state)
        if checkpoints is not None:
            checkpoints.close()  # the last save's failure is raised here
    finally:
        if checkpoints is not None:  # a background save finishes even when something failed
            checkpoints.close(quiet=True)
        if bar is not None:
            bar.close()
    run_seconds = init_seconds + time.perf_counter() - t0 - tail_seconds
    compile_seconds += tail_seconds
    if len(which) > runs:
        state = jax.jit(lambda s: jax.tree.map(lambda x: x[:runs], s))(state)
    ran = runs * (num_updates - (resumed_at or 0)) * steps_per_update
    return BatchResult(state, join_chunks(chunks, metric_names(batch.configs[0])), devices,
                       len(which), length, compile_seconds, run_seconds, ran / run_seconds,
                       resumed_at, 0 if checkpoints is None else checkpoints.saved)


def storable(configs) -> bool:
    """Whether the program store (:mod:`pgjax.programs`) may keep the programs of ``configs``:
    pgjax's own algorithms on env ids that pgjax makes (the digest covers their code), no user
    drift function, one process (under ``jax.distributed`` every process traces)."""
    from pgjax.algorithms import is_built_in
    from pgjax.envs import is_user_registered

    return jax.process_count() == 1 and all(
        is_built_in(c.algo) and isinstance(c.env, str) and not is_user_registered(c.env)
        and c.drift is None for c in configs)


def placed(tree, like):
    """``tree``'s leaves as ``jax.ShapeDtypeStruct`` placed as ``like`` (the run axis split
    over the devices)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=like.sharding),
                        tree)
