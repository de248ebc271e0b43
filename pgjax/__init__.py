"""pgjax: JAX-native policy optimisation — whole training runs as one XLA program."""

from pgjax import advantages, distributions, drifts, envs, losses
from pgjax.advantages import gae
from pgjax.algorithms import register, register_drift
from pgjax.config import ALGORITHMS, Config, make_config, stack_configs
from pgjax.devices import use_compile_cache, use_host_devices
from pgjax.policy import evaluate, initial_memory, make_policy
from pgjax.programs import compiler_options
from pgjax.trainer import METRICS, TrainState, make_train, make_trainer

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "Config",
    "METRICS",
    "TrainState",
    "advantages",
    "compiler_options",
    "distributions",
    "drifts",
    "envs",
    "evaluate",
    "initial_memory",
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
    "use_compile_cache",
    "use_host_devices",
]


def __getattr__(name):
    # The front ends of the host engine pull in orbax, tqdm and matplotlib: loaded on first use.
    if name == "train":
        from pgjax.runner import train

        return train
    if name == "resume":
        from pgjax.runs import resume

        return resume
    if name == "sweep":
        from pgjax.sweeps import sweep

        return sweep
    raise AttributeError(f"module 'pgjax' has no attribute {name!r}")
