"""Shared by the kill-and-resume tests: a `pgjax` CLI subprocess killed with SIGKILL right after
it wrote a checkpoint, a truncated checkpoint, and a digest of a directory's files (to show
nothing was changed)."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import sys, time
    import pgjax
    from pgjax import checkpoint, cli

    save = checkpoint.Checkpointer.save

    def save_then_stall(self, step, *args, **kwargs):  # a stand-in for a long run
        save(self, step, *args, **kwargs)
        self.wait()
        if step >= {kill_after}:
            print(f"saved {{step}}", flush=True)
            time.sleep(600)

    checkpoint.Checkpointer.save = save_then_stall
    sys.exit(cli.main(sys.argv[1:]))
""")


def sigkill_after_checkpoint(argv: list, kill_after: int, tmp_path: Path,
                             while_running=None) -> None:
    """Run ``pgjax ARGV`` in a subprocess; once it has written (and finished writing) a
    checkpoint at update ``kill_after`` or later, call ``while_running(pid)`` (if given), then
    kill it with SIGKILL."""
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(kill_after=kill_after))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen([sys.executable, str(script), *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = child.stdout.readline()
        assert line.startswith(f"saved {kill_after}"), \
            (line, child.stderr.read() if not line else "")
        if while_running is not None:
            while_running(child.pid)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


def tree_digest(path: Path) -> dict:
    """``relative path → SHA-256`` of every file under ``path`` but the run-directory lock (a
    refused run may take over a dead process's lock: it holds no run data)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != ".pgjax-lock"}


def truncate_state(step_dir: Path) -> None:
    """Damage a checkpoint: truncate every data file of its ``state`` item to half."""
    for path in (step_dir / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 16:
            with open(path, "r+b") as f:
                f.truncate(path.stat().st_size // 2)
