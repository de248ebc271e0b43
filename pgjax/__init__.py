"""pgjax: JAX-native policy optimisation — whole training runs as one XLA program."""

from pgjax._xla import configure_host_devices as _configure_host_devices

_configure_host_devices()

from pgjax import advantages, distributions, drifts, envs, losses  # noqa: E402
from pgjax.advantages import gae  # noqa: E402
from pgjax.config import ALGORITHMS, Config, make_config, stack_configs  # noqa: E402
from pgjax.policy import evaluate, make_policy  # noqa: E402
from pgjax.trainer import METRICS, TrainState, make_train, make_trainer  # noqa: E402

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
    "stack_configs",
    "resume",
    "sweep",
    "train",
]


def __getattr__(name):
    if name in ("train", "resume"):  # the runner pulls in matplotlib/tqdm: import on first use
        from pgjax import runner

        return getattr(runner, name)
    if name == "sweep":
        from pgjax.sweep import sweep

        return sweep
    raise AttributeError(f"module 'pgjax' has no attribute {name!r}")
