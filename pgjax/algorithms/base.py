"""What an algorithm is: a value holding its typed hyperparameters, its update and the metrics
that update reports, its run-setting defaults and its presets per env.

Hyperparameters are declared once, as fields of a ``flax.struct`` dataclass made with
:func:`hyperparameter` — type, default, allowed range and doc side by side; ``make_config``
validates against that declaration. A float is a pytree leaf (a grid over it is one ``vmap``
and one compile), an int or a bool is static (it shapes the program).

Example:
  >>> from flax import struct
  >>> from pgjax.algorithms import hyperparameter
  >>> @struct.dataclass
  ... class KLPenalty:
  ...     kl_coef: float = hyperparameter(0.2, low=0.0, doc="β of the β·KL(π_old ‖ π) penalty")
  >>> KLPenalty().kl_coef
  0.2
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from flax import struct

from pgjax.updates import UpdateRule, mirror_rule

INF = float("inf")


def hyperparameter(default, *, low: float = -INF, high: float = INF,
                   low_inclusive: bool = False, high_inclusive: bool = False, doc: str = ""):
    """A hyperparameter field: a float is a pytree leaf, an int or a bool static. ``low`` and
    ``high`` bound a number (exclusive unless said); an int must also be ≥ 1 unless ``low``
    says otherwise."""
    kind = type(default)
    if kind not in (float, int, bool):
        raise TypeError(f"hyperparameter: default {default!r} must be a float, int or bool")
    return struct.field(pytree_node=kind is float, default=default, metadata={
        "kind": kind, "range": (low, high, low_inclusive, high_inclusive), "doc": doc})


def fields(hyperparameters) -> dict[str, dataclasses.Field]:
    """The hyperparameter fields of a hyperparameter class or value, by name."""
    return {f.name: f for f in dataclasses.fields(hyperparameters)}


def make_hyperparameters(name: str, defaults: dict) -> type:
    """A hyperparameter class from ``{name: default}``: a float (a vmappable leaf, any finite
    value), an int or a bool (static), or a field made with :func:`hyperparameter`."""
    namespace, annotations = {}, {}
    for key, value in defaults.items():
        if not key.isidentifier():
            raise ValueError(f"defaults: {key!r} is not a valid hyperparameter name")
        field = value if isinstance(value, dataclasses.Field) else hyperparameter(value)
        annotations[key] = field.metadata["kind"]
        namespace[key] = field
    namespace["__annotations__"] = annotations
    cls = type(f"{name}Hyperparameters", (), namespace)
    return struct.dataclass(cls)


@struct.dataclass
class NoHyperparameters:
    """An algorithm with nothing of its own to set (PPO, SPO): only the run settings."""


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A registered algorithm.

    Its update is the shared first-order Mirror-Learning update on ``E[r·Â − drift]``
    (:func:`pgjax.updates.mirror_update`), or its own: ``make_update(config, network) ->
    UpdateRule`` for a config whose ``hparams`` is a ``hyperparameters`` value. The update
    reports the shared per-update metrics it computes (:data:`pgjax.trainer.METRICS`; the
    others are NaN) and exactly the names in ``metrics`` on top of them.
    """

    name: str
    hyperparameters: type = NoHyperparameters
    metrics: tuple[str, ...] = ()  #: the update's own metric names, beyond the shared ones
    defaults: dict = dataclasses.field(default_factory=dict)  #: run settings it changes
    presets: dict = dataclasses.field(default_factory=dict)  #: env id → overrides
    #: preset name → env id → overrides, chosen with ``make_config(..., preset=name)``
    named_presets: dict = dataclasses.field(default_factory=dict)
    description: str = ""
    #: ``drift(config, DriftInputs) -> D`` per sample, for drift-based algorithms (None else)
    drift: Callable | None = None
    drift_params: Callable[[], Any] | None = None  #: default ``config.drift_params`` (learned)
    #: the drift reads ``DriftInputs.kl``: π_old is kept and KL(π‖π_old) computed (5% of a PPO
    #: update on CPU, measured) and ``kl_new_old`` reported (NaN otherwise)
    uses_kl: bool = False
    make_update: Callable | None = None  #: its own update rule (None: the shared one)
    #: its own update takes a recurrent policy's batch (``memory="gru"``: ``batch.obs`` a
    #: :class:`pgjax.recurrent.Sequences`, the other fields ``[num_envs, num_steps]``; gather
    #: samples with :func:`pgjax.updates.take`); the shared update always does
    supports_memory: bool = False
    #: ``check(config)`` raises a one-line ValueError on a combination make_config cannot see
    check: Callable | None = None

    def update_rule(self, config, network) -> UpdateRule:
        """The update for ``config``: its own, or the shared one with its drift."""
        if self.make_update is not None:
            return self.make_update(config, network)
        return mirror_rule(config, network, drift=functools.partial(self.drift, config),
                           with_kl=self.uses_kl)

    @property
    def hyperparameter_names(self) -> tuple[str, ...]:
        return tuple(fields(self.hyperparameters))
