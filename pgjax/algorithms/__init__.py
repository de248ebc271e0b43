"""The algorithm registry: every algorithm is a value (:class:`Algorithm`) defined in one file
of this package, and users add their own without editing pgjax.

* a drift with its own hyperparameters: :func:`register_drift`;
* an algorithm with its own update rule: :func:`register` with an :class:`Algorithm` whose
  ``make_update(config, network)`` returns a :class:`pgjax.updates.UpdateRule`.

Example:
  >>> import jax.numpy as jnp, pgjax
  >>> def my_drift(ratio, advantage, my_eps):
  ...     return jnp.abs(advantage) * (ratio - 1) ** 2 / (2 * my_eps)
  >>> algorithm = pgjax.register_drift("myspo_doc", my_drift, defaults={"my_eps": 0.3})
  >>> pgjax.make_config("myspo_doc", "CartPole-v1", my_eps=0.25).my_eps
  0.25
  >>> del ALGORITHMS["myspo_doc"]
  >>> sorted(ALGORITHMS)
  ['dpo', 'fixpo', 'lpo', 'lpo_cartpole', 'mdpo', 'mirror', 'ppo', 'spo', 'talpo', 'trpo']
"""

from __future__ import annotations

from pgjax import drifts
from pgjax.algorithms.base import (Algorithm, NoHyperparameters, hyperparameter,
                                   make_hyperparameters)
from pgjax.algorithms.dpo import DPO
from pgjax.algorithms.fixpo import FIXPO
from pgjax.algorithms.lpo import LPO, TALPO, shipped_algorithm
from pgjax.algorithms.mdpo import MDPO
from pgjax.algorithms.mirror import MIRROR, drift_algorithm, user_drift
from pgjax.algorithms.ppo import PPO
from pgjax.algorithms.spo import SPO
from pgjax.algorithms.trpo import TRPO

__all__ = ["ALGORITHMS", "Algorithm", "NoHyperparameters", "hyperparameter",
           "is_built_in", "make_hyperparameters", "register", "register_drift", "user_drift"]

#: Every registered algorithm by name: pgjax's, the shipped learned drifts, and the user's.
ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (PPO, SPO, DPO, MDPO, LPO, TALPO, MIRROR,
                                                         TRPO, FIXPO)}
ALGORITHMS.update({name: shipped_algorithm(name) for name in drifts.shipped()})
_BUILT_IN = frozenset(ALGORITHMS)


def is_built_in(name: str) -> bool:
    """Whether ``name`` is one of pgjax's algorithms (a shipped drift included), not a user's."""
    return name in _BUILT_IN


def register(algorithm: Algorithm) -> Algorithm:
    """Add ``algorithm`` under its name (a user's may be registered again, e.g. when a
    notebook cell is re-run; pgjax's own names are refused)."""
    if not algorithm.name.isidentifier():
        raise ValueError(f"algo: {algorithm.name!r} is not a valid algorithm name")
    if algorithm.name in _BUILT_IN:
        raise ValueError(f"algo: {algorithm.name!r} is one of pgjax's algorithms; pick another "
                         "name")
    if algorithm.drift is None and algorithm.make_update is None:
        raise ValueError(f"algo: {algorithm.name} needs a drift or its own make_update")
    ALGORITHMS[algorithm.name] = algorithm
    return algorithm


def register_drift(name: str, drift, *, defaults: dict | None = None,
                   presets: dict | None = None, description: str = "") -> Algorithm:
    """Register the algorithm maximising ``E[r·Â − drift]`` with the shared first-order update.

    ``drift(ratio, advantage, ..., **hyperparameters)`` returns one value per sample; it may
    also take ``log_ratio``, ``kl`` (the analytic KL(π‖π_old) per sample) and ``progress``
    (the share of training done) by name; its other arguments are hyperparameters, each with
    a default in ``defaults``. Floats are vmappable leaves: a sweep grid over one is one
    group and one compile. ``presets`` (env id → overrides) default to PPO's.
    """
    return register(drift_algorithm(name, drift, defaults=defaults, presets=presets,
                                    description=description))
