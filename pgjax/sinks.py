"""Optional metric sinks for training runs and sweeps: TensorBoard and Weights & Biases, one run
per seed, the runs of a sweep group (or of a training run) sharing a group. Off by default; a
backend is imported only when its sink is made (``pgjax.train(..., sinks=["tensorboard"])``,
``pgjax.sweep(..., sinks=["tensorboard"])``, spec key ``sinks``, ``--sinks`` on the command
line).

Each sink receives a chunk of metrics after the chunk returns to the host (never from inside the
compiled program), with the run's group, configuration, seed and swept hyperparameters, so seeds
never mix (the JaxMARL#95 confusion of vmapped seeds logged as one run).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

__all__ = ["RunInfo", "TensorBoardSink", "WandbSink", "make_sinks"]


@dataclasses.dataclass(frozen=True)
class RunInfo:
    group: str
    algo: str
    env: str
    seed: int
    hyperparameters: dict

    @property
    def name(self) -> str:
        values = "-".join(f"{k}={v}" for k, v in self.hyperparameters.items())
        return f"{self.algo}{'-' + values if values else ''}-seed{self.seed}"


class TensorBoardSink:
    """One event file per run under ``out/tensorboard/<group>/<run>`` (tensorboardX)."""

    def __init__(self, out):
        from tensorboardX import SummaryWriter

        self._writer_class = SummaryWriter
        self.root = Path(out) / "tensorboard"
        self.writers = {}

    def write(self, run: RunInfo, metrics: dict) -> None:
        key = (run.group, run.name)
        if key not in self.writers:
            self.writers[key] = self._writer_class(str(self.root / run.group / run.name))
        writer = self.writers[key]
        for t, step in enumerate(metrics["env_steps"]):
            for name, values in metrics.items():
                if name != "env_steps" and np.isfinite(values[t]):
                    writer.add_scalar(name, float(values[t]), int(step))

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


class WandbSink:
    """One W&B run per seed, ``group`` = the sweep group, ``config`` = the swept values."""

    def __init__(self, out, project: str = "pgjax"):
        import wandb

        self.wandb, self.project, self.dir, self.runs = wandb, project, str(out), {}

    def write(self, run: RunInfo, metrics: dict) -> None:
        key = (run.group, run.name)
        if key not in self.runs:
            self.runs[key] = self.wandb.init(
                project=self.project, group=run.group, name=run.name, dir=self.dir,
                config={"algo": run.algo, "env": run.env, "seed": run.seed,
                        **run.hyperparameters}, reinit="create_new")
        for t, step in enumerate(metrics["env_steps"]):
            self.runs[key].log({k: float(v[t]) for k, v in metrics.items()
                                if k != "env_steps" and np.isfinite(v[t])}, step=int(step))

    def close(self) -> None:
        for run in self.runs.values():
            run.finish()
        self.runs = {}


_SINKS = {"tensorboard": TensorBoardSink, "wandb": WandbSink}
#: sink → (the module it imports, the extra that installs it)
_NEEDS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}


def make_sinks(names, out) -> list:
    """The sinks named (``"tensorboard"``, ``"wandb"``), writing under ``out``; an unknown
    name, or a sink whose package is not installed, is a one-line ``ValueError`` (with the
    install command)."""
    import importlib.util

    from pgjax.extras import install_hint

    unknown = [n for n in names if n not in _SINKS]
    if unknown:
        raise ValueError(f"sinks: unknown sink {unknown[0]!r} (known: {', '.join(_SINKS)})")
    for name in names:
        module, extra = _NEEDS[name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"sinks: {name} needs {module}, which is not installed: "
                             f"{install_hint(extra)}")
    return [_SINKS[n](out) for n in names]
