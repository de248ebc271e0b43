"""Checking a run config: the kinds and ranges of the run settings, every algorithm's declared
hyperparameters, its drift on abstract inputs — each failure one ``ValueError`` line that
names the field, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import importlib

import jax
import jax.numpy as jnp
import numpy as np

from pgjax import drifts
from pgjax import envs as envs_lib
from pgjax.algorithms import ALGORITHMS, user_drift
from pgjax.algorithms.base import fields as algorithm_fields
from pgjax.checks import INT32_MAX
from pgjax.networks import ACTIVATIONS, TORSOS
from pgjax.updates import DriftInputs

ACTION_HEADS = ("clip", "tanh")
MEMORIES = ("none", "gru")
INT_FIELDS = ("num_envs", "num_steps", "num_epochs", "num_minibatches", "total_timesteps",
              "memory_size")
BOOL_FIELDS = ("anneal_lr", "normalize_advantages", "clip_value_loss",
                "normalize_observations", "normalize_rewards", "skip_nonfinite")
TUPLE_FIELDS = ("actor_hidden", "critic_hidden", "conv_channels")
CHOICE_FIELDS = {"torso": TORSOS, "action_head": ACTION_HEADS, "memory": MEMORIES,
                 "activation": tuple(ACTIVATIONS)}
FLOAT_RANGES = {  # name: (low, high, low inclusive, high inclusive)
    "learning_rate": (0.0, float("inf"), False, False),
    "gamma": (0.0, 1.0, True, True),
    "gae_lambda": (0.0, 1.0, True, True),
    "clip_epsilon": (0.0, float("inf"), False, False),
    "ent_coef": (0.0, float("inf"), True, False),
    "vf_coef": (0.0, float("inf"), True, False),
    "max_grad_norm": (0.0, float("inf"), False, False),
    "adam_eps": (0.0, float("inf"), False, False),
    "reward_scale": (0.0, float("inf"), False, False),
}


def close_names(word, options):
    close = difflib.get_close_matches(word, list(options), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _range_text(low, high, low_in, high_in):
    left = "[" if low_in else "("
    right = "]" if high_in else ")"
    return f"{left}{low:g}, {high:g}{right}"


def kind_of(name, hparams_cls=None):
    """The type a field or hyperparameter takes: int, bool, tuple, float, or None (as is)."""
    if hparams_cls is not None and name in algorithm_fields(hparams_cls):
        return algorithm_fields(hparams_cls)[name].metadata["kind"]
    return (int if name in INT_FIELDS else bool if name in BOOL_FIELDS
            else tuple if name in TUPLE_FIELDS else float if name in FLOAT_RANGES else None)


def coerce(name, value, kind):
    """Convert a value (possibly a CLI string) to ``kind``, or raise a one-liner."""
    if name in ("drift", "drift_params"):
        return _coerce_drift(name, value)
    try:
        if kind is int:
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "1")
            return bool(value)
        if kind is tuple:
            if isinstance(value, str):
                value = [v for v in value.replace("x", ",").split(",") if v.strip()]
            value = tuple(int(v) for v in value)
            if not value or min(value) < 1:
                raise ValueError
            return value
        if kind is float:
            return float(value)
    except (TypeError, ValueError, OverflowError):
        text = {int: "an integer", bool: "true or false",
                tuple: "a list of positive integers like 64,64"}.get(kind, "a number")
        raise ValueError(f"{name}: {value!r} is not {text}") from None
    return value


def _coerce_drift(name, value):
    """``drift``: a function, or ``"module:function"``; ``drift_params``: a pytree, a shipped
    drift's name or an ``.npz`` path (:func:`pgjax.drifts.load`) or :meth:`Config.to_dict`'s
    nested lists."""
    if name == "drift" and isinstance(value, str):
        module, _, attr = value.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError):
            raise ValueError(f"drift: cannot import {value!r} (expected module:function)"
                             ) from None
    if name == "drift_params" and isinstance(value, str):
        return drifts.load(value)
    if name == "drift_params" and isinstance(value, dict):
        value = jax.tree.map(jnp.asarray, value, is_leaf=lambda x: isinstance(x, list))
        if set(value) == {"w_hidden", "w_out"}:
            return drifts.DriftNetParams(value["w_hidden"], value["w_out"])
    return value


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def validate(config) -> None:
    """Check every field and hyperparameter on the host; raise a one-line ``ValueError``
    naming the first bad one.

    Continuous values are checked as the float32 values training uses (a value that overflows
    float32, or rounds to a bound, is out of range)."""
    for name, choices in CHOICE_FIELDS.items():
        if getattr(config, name) not in choices:
            raise ValueError(f"{name}: {getattr(config, name)!r} is not one of "
                             f"{', '.join(choices)}")
    for name in INT_FIELDS:
        _check_int(name, getattr(config, name), 1)
    for name in BOOL_FIELDS:
        _check_bool(name, getattr(config, name), none_ok=name.startswith("normalize_"))
    if not (isinstance(config.env_kwargs, tuple) and all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
            for p in config.env_kwargs)):
        raise ValueError(f"env_kwargs: {config.env_kwargs!r} must be a dict of env "
                         "parameters, e.g. {'max_steps_in_episode': 200}")
    for name in TUPLE_FIELDS:
        value = getattr(config, name)
        if not (isinstance(value, tuple) and value and all(
                _is_int(h) and h >= 1 for h in value)):
            raise ValueError(f"{name}: {value!r} must be a non-empty tuple of positive "
                             "integers like (64, 64)")
    for name, bounds in FLOAT_RANGES.items():
        _check_float(name, getattr(config, name), bounds)
    _check_hyperparameters(config)
    if config.batch_size % config.num_minibatches:
        raise ValueError(
            f"num_minibatches: {config.num_minibatches} does not divide num_envs*num_steps = "
            f"{config.num_envs}*{config.num_steps} = {config.batch_size}")
    if config.total_timesteps < config.batch_size:
        raise ValueError(
            f"total_timesteps: {config.total_timesteps} is less than one update "
            f"(num_envs*num_steps = {config.batch_size})")
    spec = ALGORITHMS[config.algo]
    if config.recurrent:
        _check_memory(config, spec)
    if spec.check is not None:
        spec.check(config)
    _check_drift(config)


def _check_memory(config, spec) -> None:
    """What a recurrent policy needs: minibatches of whole env sequences, flat observations,
    and an update that takes env sequences."""
    if config.num_envs % config.num_minibatches:
        raise ValueError(f"num_minibatches: {config.num_minibatches} does not divide num_envs "
                         f"= {config.num_envs} (with memory, a minibatch is whole env "
                         "sequences)")
    if config.torso == "cnn":
        raise ValueError("memory: a recurrent policy takes flat observations (torso 'mlp'); "
                         "image observations are not supported with memory yet")
    if spec.make_update is not None and not spec.supports_memory:
        raise ValueError(f"memory: {config.algo}'s own update rule does not declare "
                         "supports_memory=True (its batch would be env sequences); the drift "
                         "algorithms, trpo, fixpo and mdpo take memory")


def _check_int(name, value, low) -> None:
    """An integer from ``low`` to :data:`pgjax.checks.INT32_MAX` (the program's counters)."""
    if not _is_int(value) or value < low:
        raise ValueError(f"{name}: {value!r} must be " + (
            "a positive integer" if low == 1 else f"an integer ≥ {low:g}"))
    if value > INT32_MAX:  # e.g. env_steps = (update + 1) * batch_size, in int32
        shown = f"{value:.4g}" if value > 1e15 else repr(value)
        raise ValueError(f"{name}: {shown} must be at most {INT32_MAX} (the program counts "
                         "in int32)")


def _check_bool(name, value, none_ok=False) -> None:
    if not (isinstance(value, (bool, np.bool_)) or (value is None and none_ok)):
        raise ValueError(f"{name}: {value!r} must be true or false")


def _check_float(name, value, bounds) -> None:
    low, high, low_in, high_in = bounds
    given = np.asarray(value, np.float64)
    if high == float("inf"):  # what float32 can hold
        high, high_in = float(np.finfo(np.float32).max), True
    if low == -float("inf"):
        low, low_in = -float(np.finfo(np.float32).max), True
    with np.errstate(over="ignore"):
        values = given.astype(np.float32).astype(np.float64)
    ok = ((values >= low) if low_in else (values > low)) & (
        (values <= high) if high_in else (values < high))
    if not ok.all():
        bad = given.ravel()[int(np.argmin(ok.ravel()))]
        raise ValueError(f"{name}: {bad:g} is outside the allowed range "
                         f"{_range_text(*bounds)}")


def _check_hyperparameters(config) -> None:
    """The algorithm's hyperparameters, against their declaration (kind and range)."""
    spec = ALGORITHMS[config.algo]
    if not isinstance(config.hparams, spec.hyperparameters):
        raise ValueError(f"hparams: {type(config.hparams).__name__} is not {config.algo}'s "
                         f"{spec.hyperparameters.__name__} (build configs with make_config)")
    for name, field in algorithm_fields(config.hparams).items():
        value, kind = getattr(config.hparams, name), field.metadata["kind"]
        low = field.metadata["range"][0]
        if kind is int:
            _check_int(name, value, 1 if low == -float("inf") else low)
        elif kind is bool:
            _check_bool(name, value)
        else:
            _check_float(name, value, field.metadata["range"])


def _check_drift(config, size: int = 3) -> None:
    """Trace the algorithm's drift on abstract inputs of shape ``(size,)`` (``jax.eval_shape``,
    nothing is computed) and insist on one drift value per sample."""
    spec = ALGORITHMS[config.algo]
    if spec.drift is user_drift and not callable(config.drift):
        raise ValueError(f"drift: {config.drift!r} is not a function; algo 'mirror' needs "
                         "drift=fn with fn(ratio, advantage) -> array of the same shape")
    if spec.drift is not user_drift and config.drift is not None:
        raise ValueError(f"drift: only algo 'mirror' takes a drift function "
                         f"(algo is {config.algo!r})")
    if spec.drift is not user_drift and spec.drift_params is None and \
            config.drift_params is not None:
        raise ValueError(f"drift_params: algo {config.algo!r} has no learned drift "
                         "(lpo, talpo and mirror take drift parameters)")
    if spec.drift is None:  # an update of its own, without a drift (TRPO, FixPO)
        return
    if config.drift_params is not None and not all(
            np.isfinite(np.asarray(x, np.float32)).all()
            for x in jax.tree.leaves(config.drift_params)):
        raise ValueError("drift_params: contains NaN or infinite values")
    # What the user handed in that can break the drift: the function, or the learned params.
    field, name = (("drift", getattr(config.drift, "__name__", repr(config.drift)))
                   if spec.drift is user_drift else ("drift_params", f"the {config.algo} drift"))
    sample = jax.ShapeDtypeStruct((size,), jnp.float32)
    inputs = DriftInputs(sample, sample, sample, jax.ShapeDtypeStruct((), jnp.float32))
    try:
        out = jax.eval_shape(spec.drift, config, inputs)
    except Exception as error:  # noqa: BLE001 - any failure of the user's code, in one line
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(f"{field}: {name} fails on ratio and advantage of shape ({size},): "
                         f"{type(error).__name__}: {detail}") from None
    if getattr(out, "shape", None) != (size,):
        raise ValueError(f"{field}: {name} returns shape {getattr(out, 'shape', type(out))} for "
                         f"ratio and advantage of shape ({size},); a drift must return one "
                         "value per sample")


def check_name(algo: str, name: str, own, run_fields) -> None:
    """Refuse a name that is neither a run setting nor one of ``algo``'s hyperparameters."""
    if name in own or (name in run_fields and name not in ("algo", "env", "hparams")):
        return
    theirs = [a.name for a in ALGORITHMS.values() if name in a.hyperparameter_names]
    if theirs:
        raise ValueError(f"{name} is not a hyperparameter of {algo}; its hyperparameters are: "
                         f"{', '.join(own) or 'none'}")
    raise ValueError(f"{name}: not a run setting or a hyperparameter of {algo}"
                     f"{close_names(name, [*run_fields, *own])}")


def check_action_head(config, env) -> None:
    """Refuse ``action_head="tanh"`` on a Box action space with an infinite bound: the squashed
    action ``low + (tanh(u) + 1)·(high − low)/2`` is NaN (∞ − ∞ or 0·∞) there.

    Example:
      >>> import pgjax
      >>> from pgjax import envs
      >>> from pgjax.validation import check_action_head
      >>> env = envs.make("Pendulum-v1")  # bounds ±2
      >>> check_action_head(pgjax.make_config("ppo", "Pendulum-v1", action_head="tanh"), env)
    """
    space = env.action_space
    if config.action_head != "tanh" or not isinstance(space, envs_lib.Box):
        return
    if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        raise ValueError(f"action_head: 'tanh' squashes actions into the action bounds, and "
                         f"those of {config.env_id} are infinite (low {space.low.min()}, high "
                         f"{space.high.max()}): NaN actions; use action_head='clip' or give "
                         "the action space finite bounds")


