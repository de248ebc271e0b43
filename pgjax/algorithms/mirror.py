"""Any drift as an algorithm: the ``mirror`` algorithm (a drift function in the run config)
and :func:`drift_algorithm`, behind :func:`pgjax.register_drift` (a named drift with its own
hyperparameters).

Mirror Learning (Kuba, Schroeder de Witt & Foerster, ICML 2022, arXiv 2201.02373): every valid
drift ``D(r, Â) ≥ 0`` with ``D = 0`` and ``∂D/∂r = 0`` at ``r = 1`` gives an algorithm
maximising ``E[r·Â − D]``, trained by the shared first-order update with PPO's presets.

A drift function's arguments are read by name: ``ratio`` and ``advantage`` (required),
``log_ratio``, ``kl`` (the analytic ``KL(π(·|s) ‖ π_old(·|s))`` per sample; computed only when
asked for) and ``progress`` (``k/K``, the share of training done: MDPO's and TA-LPO's input);
every other argument is a hyperparameter, with a default in ``defaults``.

Example:
  >>> import jax.numpy as jnp, pgjax
  >>> def quartic(ratio, advantage, width):
  ...     return jnp.abs(advantage) * (ratio - 1.0) ** 4 / width
  >>> algorithm = drift_algorithm("quartic", quartic, defaults={"width": 0.1})
  >>> algorithm.hyperparameter_names, algorithm.uses_kl
  (('width',), False)
"""

import inspect

from pgjax.algorithms.base import Algorithm, make_hyperparameters
from pgjax.algorithms.ppo import NAMED_PRESETS, PRESETS

#: What a drift function may ask for by argument name (:class:`pgjax.updates.DriftInputs`).
DRIFT_INPUTS = ("ratio", "advantage", "log_ratio", "kl", "progress")


def user_drift(config, x):
    """The ``mirror`` algorithm's drift: ``config.drift(ratio, advantage)``, or
    ``config.drift(config.drift_params, ratio, advantage)`` when ``drift_params`` is set."""
    if config.drift_params is None:
        return config.drift(x.ratio, x.advantage)
    return config.drift(config.drift_params, x.ratio, x.advantage)


MIRROR = Algorithm(
    name="mirror",
    drift=user_drift,
    presets=PRESETS,
    named_presets=NAMED_PRESETS,
    description="any drift: make_config('mirror', env, drift=fn), fn(ratio, advantage) "
                "or fn(drift_params, ratio, advantage)",
)


def drift_algorithm(name: str, drift, *, defaults: dict | None = None,
                    presets: dict | None = None, description: str = "") -> Algorithm:
    """The algorithm maximising ``E[r·Â − drift]``; ``drift``'s arguments other than
    :data:`DRIFT_INPUTS` are its hyperparameters, each with a default in ``defaults`` (a float
    is a vmappable leaf; see :func:`pgjax.algorithms.make_hyperparameters`)."""
    defaults = dict(defaults or {})
    try:
        parameters = inspect.signature(drift).parameters
    except (TypeError, ValueError):
        raise ValueError(f"drift: {drift!r} has no inspectable signature") from None
    wanted = [p for p in parameters if p not in DRIFT_INPUTS]
    for required in ("ratio", "advantage"):
        if required not in parameters:
            raise ValueError(f"drift: {name} must take '{required}' (it takes "
                             f"{', '.join(parameters)})")
    missing = [p for p in wanted if p not in defaults and
               parameters[p].default is inspect.Parameter.empty]
    if missing:
        raise ValueError(f"defaults: {name}'s drift takes {', '.join(missing)}; give each a "
                         "default, e.g. defaults={" + f"'{missing[0]}': 0.1" + "}")
    unused = sorted(set(defaults) - set(wanted))
    if unused:
        raise ValueError(f"defaults: {', '.join(unused)} not an argument of {name}'s drift "
                         f"(its arguments: {', '.join(parameters)})")
    for p in wanted:  # a keyword default of the function itself is a hyperparameter too
        defaults.setdefault(p, parameters[p].default)
    inputs = [p for p in parameters if p in DRIFT_INPUTS]

    def bound(config, x):
        return drift(**{p: getattr(x, p) for p in inputs},
                     **{p: getattr(config.hparams, p) for p in wanted})

    bound.__name__ = getattr(drift, "__name__", name)
    return Algorithm(
        name=name,
            hyperparameters=make_hyperparameters(name, {p: defaults[p] for p in wanted}),
        drift=bound,
        presets=PRESETS if presets is None else presets,
        named_presets=NAMED_PRESETS if presets is None else {},
        uses_kl="kl" in inputs,
        description=description or f"drift {bound.__name__}({', '.join(parameters)})",
    )
