"""File-system faults: a checkpoint that cannot be written (no space, read-only, removed) stops
the run in one line naming the path and the reason, exit status 4, leaves no temporary
directory and no process behind, and the run resumes bit-identically from its last complete
checkpoint; orbax's own messages go to a log file, not the terminal; ``chunk_length`` is
O(√n)."""

import logging
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import pgjax
import pgjax.cli
from pgjax.checkpoint import TEMPORARY_SUFFIX, CheckpointOptions, Checkpointer
from pgjax.checkpoint_log import route_to
from pgjax.engine import CHECKPOINT_DIR, chunk_length
from pgjax.run_lock import LOCK_FILE, run_directory_lock

REPO = Path(__file__).resolve().parents[1]
TINY = dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=4,
            total_timesteps=4 * 32 * 12)
SETS = [f"{k}={v}" for k, v in TINY.items()]
TRAIN = ["train", "ppo", "CartPole-v1", "--seeds", "2", "--quiet", "--checkpoint-every-updates",
         "4", "--checkpoint-every", "0", "--set", *SETS]
NO_SPACE = ("RESOURCE_EXHAUSTED: Error writing in OCDBT database: Failed to write 405907 bytes "
            "to file 7: No space left on device [os_error_code='28']")


@pytest.fixture(scope="module")
def uninterrupted():
    config = pgjax.make_config("ppo", "CartPole-v1", **TINY)
    return pgjax.train(config, seeds=2, progress=False, checkpoint=False)


def fail_saves_from(monkeypatch, step: int, once: bool = False):
    """orbax's save of ``step`` (and later ones, unless ``once``) fails as a full disk does,
    leaving its temporary directory behind."""
    import orbax.checkpoint as ocp

    save, failed = ocp.CheckpointManager.save, []

    def failing_save(self, at, *args, **kwargs):
        if at >= step and not (once and failed):
            failed.append(at)
            (Path(self.directory) / f"{at}{TEMPORARY_SUFFIX}").mkdir()
            raise ValueError(NO_SPACE)
        return save(self, at, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", failing_save)
    return failed


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.slow
def test_full_disk_stops_in_one_line_and_resume_is_bit_identical(tmp_path, monkeypatch, capsys,
                                                                  uninterrupted):
    out = tmp_path / "run"
    fail_saves_from(monkeypatch, 8)
    assert pgjax.cli.main([*TRAIN, "--out", str(out)]) == 4
    assert one_line(capsys.readouterr().err) == (
        f"pgjax: checkpoint: cannot write {out / CHECKPOINT_DIR / '8'}: No space left on device "
        "(the newest complete checkpoint is update 4)")
    assert not list((out / CHECKPOINT_DIR).glob(f"*{TEMPORARY_SUFFIX}"))  # cleaned up
    assert not (out / "metrics.csv").exists()  # stopped, not trained on
    assert Checkpointer(out / CHECKPOINT_DIR).steps() == [4]

    monkeypatch.undo()  # space again: the run continues from update 4
    resumed = pgjax.resume(out, progress=False)
    assert resumed.summary["resumed_at_update"] == 4
    for a, b in zip(jax.tree.leaves(jax.tree.map(np.asarray, resumed.metrics)),
                    jax.tree.leaves(jax.tree.map(np.asarray, uninterrupted.metrics))):
        np.testing.assert_array_equal(a, b)
    params = [jax.tree.leaves(r.final_state.params) for r in (resumed, uninterrupted)]
    for a, b in zip(*params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_continue_on_checkpoint_error_warns_once_and_trains_on(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    failed = fail_saves_from(monkeypatch, 8, once=True)
    with pytest.warns(UserWarning) as warned:
        assert pgjax.cli.main([*TRAIN, "--out", str(out), "--on-checkpoint-error",
                               "continue"]) == 0
    assert capsys.readouterr().err == "" and len(warned) == 1
    line = one_line(str(warned[0].message))
    assert line.startswith(f"checkpoint: cannot write {out / CHECKPOINT_DIR}/8: No space left "
                           "on device") and "training continues" in line, line
    assert failed == [8] and (out / "metrics.csv").exists()
    assert Checkpointer(out / CHECKPOINT_DIR).steps() == [4, 9, 12]  # tried again at 9


def test_a_leftover_temporary_checkpoint_is_removed_at_the_next_start(tmp_path):
    out = tmp_path / "run"
    left = out / CHECKPOINT_DIR / f"6{TEMPORARY_SUFFIX}"
    left.mkdir(parents=True)
    pgjax.train(pgjax.make_config("ppo", "CartPole-v1", **TINY), seeds=2, out=out,
                progress=False)
    assert not left.exists() and Checkpointer(out / CHECKPOINT_DIR).steps() == [12]


def test_an_unwritable_run_directory_is_refused_before_compiling(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    start = time.perf_counter()
    assert pgjax.cli.main([*TRAIN, "--out", str(blocker / "run")]) == 4
    assert one_line(capsys.readouterr().err).startswith(f"pgjax: cannot write {blocker}/run: ")
    assert time.perf_counter() - start < 5  # nothing compiled


CHILD = textwrap.dedent("""
    import errno, sys
    import orbax.checkpoint as ocp
    from pgjax import cli

    wait = ocp.CheckpointManager.wait_until_finished

    def failing_wait(self):  # the background save failed as on a read-only file system
        wait(self)
        raise OSError(errno.EROFS, "Read-only file system", str(self.directory) + "/4")

    ocp.CheckpointManager.wait_until_finished = failing_wait
    sys.exit(cli.main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_a_failed_background_save_exits_the_process(tmp_path):
    """The error of a save written in orbax's background thread surfaces at the next wait:
    one line, status 4, and the process ends (no thread left waiting)."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, str(script), *TRAIN, "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 4, done.stderr[-3000:]
    assert one_line(done.stderr) == (f"pgjax: checkpoint: cannot write {tmp_path}/run/"
                                     f"{CHECKPOINT_DIR}/4: Read-only file system "
                                     "(no complete checkpoint)")


def test_orbax_messages_go_to_the_log_file(tmp_path, capsys):
    log = tmp_path / "checkpoints.log"
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    absl = logging.getLogger("absl")
    absl.addHandler(handler)
    route = route_to(log)
    try:
        for path in ("/site-packages/orbax/checkpoint/future.py", "/elsewhere/module.py"):
            absl.handle(logging.LogRecord("absl", logging.ERROR, path, 1, "failed %s", ("x",),
                                          None))
        # A storage callback completing after orbax closed its event loop.
        try:
            raise RuntimeError("Event loop is closed")
        except RuntimeError as error:
            sys.unraisablehook(type("U", (), {"exc_value": error, "exc_type": RuntimeError,
                                              "exc_traceback": error.__traceback__,
                                              "err_msg": None, "object": None})())
    finally:
        route.close()
        absl.removeHandler(handler)
    assert [r.pathname for r in seen] == ["/elsewhere/module.py"]  # only orbax's is routed
    text = log.read_text()
    assert "ERROR failed x" in text and "Event loop is closed" in text
    assert capsys.readouterr().err == ""


def test_the_lock_is_reentrant_and_released(tmp_path):
    with run_directory_lock(tmp_path):
        with run_directory_lock(tmp_path):  # pgjax.resume -> train in one process
            assert f'"pid": {os.getpid()}' in (tmp_path / LOCK_FILE).read_text()
        assert (tmp_path / LOCK_FILE).read_text()  # still held by the outer block
    assert not (tmp_path / LOCK_FILE).exists()  # released


def test_chunk_length_is_the_closest_divisor_in_sqrt_time():
    def brute_force(n, k):
        target = n / k
        best = min((d for d in range(1, n + 1) if n % d == 0),
                   key=lambda d: (abs(math.log(d / target)), d))
        return best if abs(math.log(best / target)) <= math.log(4) else max(1, round(target))

    for n in range(1, 700):
        for k in (1, 3, 20):
            assert chunk_length(n, k) == brute_force(n, k), (n, k)
    start = time.perf_counter()
    assert chunk_length(2**31 - 1, 20) == round((2**31 - 1) / 20)  # a prime: a shorter tail
    assert chunk_length(2**30, 16) == 2**26
    assert time.perf_counter() - start < 1.0


@pytest.mark.slow
def test_a_prime_number_of_updates_runs_in_chunks_with_a_shorter_last_one(tmp_path):
    """23 updates in 5 chunks: 5 + 5 + 5 + 5 + 3 (no divisor of 23 is within a factor 4 of
    23/5), checkpointed at each chunk end, bit-identical to one scan of 23 updates."""
    config = pgjax.make_config("ppo", "CartPole-v1", **{**TINY, "total_timesteps": 4 * 32 * 23})
    chunked = pgjax.train(config, seeds=2, out=tmp_path, num_chunks=5, progress=False,
                          checkpoint=CheckpointOptions(every_seconds=None, every_updates=1,
                                                       keep=5))
    whole = pgjax.train(config, seeds=2, num_chunks=1, progress=False)
    assert chunked.summary["chunks"] == 5 and whole.summary["chunks"] == 1
    assert Checkpointer(tmp_path / CHECKPOINT_DIR).steps() == [5, 10, 15, 20, 23]
    for name in ("env_steps", "value_loss", "episodic_return"):
        np.testing.assert_array_equal(chunked.metrics[name], whole.metrics[name], name)
    for a, b in zip(jax.tree.leaves(chunked.final_state.params),
                    jax.tree.leaves(whole.final_state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_checkpoint_directory_removed_under_the_run_stops_it(tmp_path):
    checkpoints = Checkpointer(tmp_path / "run" / CHECKPOINT_DIR)
    state, history = {"x": np.arange(3.0)}, {"return": np.zeros((1, 1))}
    checkpoints.save(1, state, history, {})
    checkpoints.wait()
    import shutil

    shutil.rmtree(tmp_path / "run")  # e.g. `rm -rf` of the run directory while it trains
    with pytest.raises(OSError, match=f"^checkpoint: cannot write {tmp_path}/run/"
                                      f"{CHECKPOINT_DIR}/2: the directory was removed "
                                      r"\(no complete checkpoint\)$"):
        checkpoints.save(2, state, history, {})
    assert not (tmp_path / "run").exists()  # not silently recreated
