"""pgjax: JAX-native policy optimisation — whole training runs as one XLA program."""

from pgjax import advantages, distributions, drifts, envs, losses
from pgjax.advantages import gae
from pgjax.algorithms import register, register_drift
from pgjax.config import ALGORITHMS, Config, make_config, stack_configs
from pgjax.devices import use_host_devices
from pgjax.policy import evaluate, make_policy
from pgjax.trainer import METRICS, TrainState, make_train, make_trainer

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "Config",
    "METRICS",
    "TrainState",
    "advantages",
    "distributions",
    "drifts",
    "envs",
    "evaluate",
    "gae",
    "losses",
    "make_config",
    "make_policy",
    "make_train",
    "make_trainer",
    "register",
    "register_drift",
    "stack_configs",
    "resume",
    "sweep",
    "train",
    "use_host_devices",
]


def __getattr__(name):
    if name in ("train", "resume"):  # the runner pulls in matplotlib/tqdm: import on first use
        from pgjax import runner

        return getattr(runner, name)
    if name == "sweep":
        from pgjax.sweep import sweep

        return sweep
    raise AttributeError(f"module 'pgjax' has no attribute {name!r}")
