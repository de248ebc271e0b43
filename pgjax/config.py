"""Training configurations: frozen pytrees whose shape fields are static and whose continuous
hyperparameters are leaves, so ``jax.vmap`` over a stack of configs trains a grid in one compile.

``make_config(algo, env, **overrides)`` merges, in order: the field defaults below, the
algorithm's defaults, the registered preset for (algorithm, env), and the overrides; then
validates every field on the host (one-line ``ValueError`` naming field, value and allowed range).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from pgjax import drifts
from pgjax import envs as envs_lib
from pgjax.algorithms import ALGORITHMS, Algorithm, user_drift
from pgjax.networks import TORSOS, resolve_torso
from pgjax.updates import DriftInputs

__all__ = ["ALGORITHMS", "Algorithm", "Config", "make_config", "normalizes_by_default",
           "resolve_defaults", "stack_configs", "validate"]


def _static(default):
    return struct.field(pytree_node=False, default=default)


@struct.dataclass
class Config:
    """One training run. Static fields shape the program; leaves can be vmapped over."""

    # --- static: what is trained, and the shape of the program ---
    algo: str = _static("ppo")
    env: Any = _static("gymnax/CartPole-v1")  #: env id, or a protocol-following env object
    env_kwargs: tuple = _static(())  #: (name, value) pairs passed to ``envs.make``
    num_envs: int = _static(16)  #: parallel environments
    num_steps: int = _static(128)  #: steps per environment per update (rollout length)
    num_epochs: int = _static(8)  #: passes over each rollout batch
    num_minibatches: int = _static(8)  #: minibatches per epoch
    total_timesteps: int = _static(500_000)  #: env steps; trains total // (envs·steps) updates
    actor_hidden: tuple = _static((64, 64))  #: actor MLP hidden sizes (tanh)
    critic_hidden: tuple = _static((64, 64))  #: critic MLP hidden sizes (tanh)
    #: "auto" (set by make_config: "cnn" for image observations [H, W, C], else "mlp"), or either
    torso: str = _static("auto")
    conv_channels: tuple = _static((16,))  #: channels of the CNN torso's 3×3 conv layers
    #: continuous actions: "clip" (Gaussian, samples clipped at the env) or "tanh" (squashed)
    action_head: str = _static("clip")
    anneal_lr: bool = _static(True)  #: linear learning-rate decay over updates (TRPO: and δ)
    normalize_advantages: bool = _static(True)  #: per-minibatch advantage normalisation
    clip_value_loss: bool = _static(True)  #: PPO's clipped value loss (clip = clip_epsilon)
    #: running observation normalisation (None: on for continuous actions, set by make_config)
    normalize_observations: bool | None = _static(None)
    #: reward scaling by the running std of the discounted return (None: as above)
    normalize_rewards: bool | None = _static(None)
    drift: Callable | None = _static(None)  #: the user's drift (algo "mirror" only)
    lpo_ppo_init: bool = _static(True)  #: LPO/TA-LPO drift adds PPO's drift inside the ReLU
    #: an update with a non-finite reward, loss, gradient or parameter keeps the old parameters
    #: (counted in the ``nonfinite`` metric) instead of stopping the run
    skip_nonfinite: bool = _static(False)
    # MDPO, TRPO: num_epochs × num_minibatches (and learning_rate) are the value function's
    # Adam steps
    policy_steps: int = _static(10)  #: MDPO full-batch policy steps per update (m)
    cg_iters: int = _static(10)  #: TRPO conjugate-gradient iterations
    max_backtracks: int = _static(10)  #: TRPO line-search candidates
    fisher_subsample: int = _static(1)  #: TRPO Fisher-vector products on every k-th sample
    fixup_max_passes: int = _static(20)  #: FixPO fix-up passes per epoch at most
    #: FixPO fix-up minibatch size (the authors' ``fixup_batchsize``, 1024); the batch is cut
    #: into max(1, batch // size) minibatches, the last one taking the remainder
    fixup_minibatch_size: int = _static(1024)
    # --- leaves: continuous hyperparameters ---
    learning_rate: float = 5e-4
    gamma: float = 0.99  #: discount γ
    gae_lambda: float = 0.95  #: GAE λ
    clip_epsilon: float = 0.2  #: trust-region width ε (drift, value clip and clipfrac)
    ent_coef: float = 0.01  #: entropy bonus coefficient
    vf_coef: float = 0.5  #: value-loss coefficient
    max_grad_norm: float = 0.5  #: global gradient-norm clip
    adam_eps: float = 1e-5  #: Adam ε
    reward_scale: float = 1.0  #: rewards are multiplied by this for learning (not for logging)
    dpo_alpha: float = 2.0  #: DPO drift α (Â ≥ 0 branch)
    dpo_beta: float = 0.6  #: DPO drift β (Â < 0 branch)
    drift_params: Any = None  #: learned-drift parameters (lpo, talpo, or the user's drift)
    max_kl: float = 0.01  #: TRPO KL radius δ of E_s KL(π_old ‖ π)
    accept_kl_ratio: float = 1.5  #: TRPO line search accepts a mean KL ≤ accept_kl_ratio·δ
    cg_damping: float = 0.1  #: TRPO damping added to the Fisher-vector product
    backtrack_coef: float = 0.8  #: TRPO line-search shrink factor
    eps_kl: float = 0.5  #: FixPO bound ε_KL on max_s KL(π_old ‖ π)
    beta_target_coef: float = 3.0  #: FixPO C_β: β aims at max KL ≤ ε_KL / C_β
    beta_lr: float = 0.01  #: FixPO learning rate of β's Adam
    beta_init: float = 1.0  #: FixPO initial β

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    @property
    def env_id(self) -> str:
        return self.env if isinstance(self.env, str) else getattr(self.env, "name",
                                                                  type(self.env).__name__)

    def to_dict(self) -> dict:
        """Plain-Python view for summaries and logs (leaves converted to lists/floats)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "env":
                v = self.env_id
            elif f.name == "drift" and v is not None:
                v = (f"{v.__module__}:{v.__qualname__}" if hasattr(v, "__qualname__")
                     else repr(v))
            elif f.name == "drift_params" and v is not None:
                if isinstance(v, drifts.DriftNetParams):
                    v = {"w_hidden": v.w_hidden, "w_out": v.w_out}
                v = jax.tree.map(lambda x: np.asarray(x).tolist(), v)
            elif hasattr(v, "tolist"):
                v = v.tolist()
            out[f.name] = v
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
ACTION_HEADS = ("clip", "tanh")
_INT_FIELDS = ("num_envs", "num_steps", "num_epochs", "num_minibatches", "total_timesteps",
               "policy_steps", "cg_iters", "max_backtracks", "fisher_subsample",
               "fixup_max_passes", "fixup_minibatch_size")
_BOOL_FIELDS = ("anneal_lr", "normalize_advantages", "clip_value_loss",
                "normalize_observations", "normalize_rewards", "lpo_ppo_init",
                "skip_nonfinite")
_TUPLE_FIELDS = ("actor_hidden", "critic_hidden", "conv_channels")
_CHOICE_FIELDS = {"torso": TORSOS, "action_head": ACTION_HEADS}
_FLOAT_RANGES = {  # name: (low, high, low inclusive, high inclusive)
    "learning_rate": (0.0, float("inf"), False, False),
    "gamma": (0.0, 1.0, True, True),
    "gae_lambda": (0.0, 1.0, True, True),
    "clip_epsilon": (0.0, float("inf"), False, False),
    "ent_coef": (0.0, float("inf"), True, False),
    "vf_coef": (0.0, float("inf"), True, False),
    "max_grad_norm": (0.0, float("inf"), False, False),
    "adam_eps": (0.0, float("inf"), False, False),
    "reward_scale": (0.0, float("inf"), False, False),
    "dpo_alpha": (0.0, float("inf"), False, False),
    "dpo_beta": (0.0, float("inf"), False, False),
    "max_kl": (0.0, float("inf"), False, False),
    "accept_kl_ratio": (0.0, float("inf"), False, False),
    "cg_damping": (0.0, float("inf"), True, False),
    "backtrack_coef": (0.0, 1.0, False, False),
    "eps_kl": (0.0, float("inf"), False, False),
    "beta_target_coef": (1.0, float("inf"), True, False),
    "beta_lr": (0.0, float("inf"), True, False),
    "beta_init": (0.0, float("inf"), True, False),
}


def _close(word, options):
    close = difflib.get_close_matches(word, list(options), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _range_text(low, high, low_in, high_in):
    left = "[" if low_in else "("
    right = "]" if high_in else ")"
    return f"{left}{low:g}, {high:g}{right}"


def _coerce(name, value):
    """Convert a value (possibly a CLI string) to the field's type, or raise a one-liner."""
    if name in ("drift", "drift_params"):
        return _coerce_drift(name, value)
    try:
        if name in _INT_FIELDS:
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if name in _BOOL_FIELDS:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "1")
            return bool(value)
        if name in _TUPLE_FIELDS:
            if isinstance(value, str):
                value = [v for v in value.replace("x", ",").split(",") if v.strip()]
            value = tuple(int(v) for v in value)
            if not value or min(value) < 1:
                raise ValueError
            return value
        if name in _FLOAT_RANGES:
            return float(value)
    except (TypeError, ValueError):
        kind = ("an integer" if name in _INT_FIELDS else "true or false" if name in _BOOL_FIELDS
                else "a list of positive integers like 64,64" if name in _TUPLE_FIELDS
                else "a number")
        raise ValueError(f"{name}: {value!r} is not {kind}") from None
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


def validate(config: Config) -> None:
    """Check every field on the host; raise a one-line ``ValueError`` naming the first bad one.

    Continuous hyperparameters are checked as the float32 values training uses (a value that
    overflows float32, or rounds to a bound, is out of range)."""
    for name, choices in _CHOICE_FIELDS.items():
        if getattr(config, name) not in choices:
            raise ValueError(f"{name}: {getattr(config, name)!r} is not one of "
                             f"{', '.join(choices)}")
    for name in _INT_FIELDS:
        if not _is_int(getattr(config, name)) or getattr(config, name) < 1:
            raise ValueError(f"{name}: {getattr(config, name)!r} must be a positive integer")
    for name in _BOOL_FIELDS:
        value = getattr(config, name)
        if not (isinstance(value, (bool, np.bool_))
                or (value is None and name.startswith("normalize_"))):
            raise ValueError(f"{name}: {value!r} must be true or false")
    if not (isinstance(config.env_kwargs, tuple) and all(
            isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
            for p in config.env_kwargs)):
        raise ValueError(f"env_kwargs: {config.env_kwargs!r} must be a dict of env "
                         "parameters, e.g. {'max_steps_in_episode': 200}")
    for name in _TUPLE_FIELDS:
        value = getattr(config, name)
        if not (isinstance(value, tuple) and value and all(
                _is_int(h) and h >= 1 for h in value)):
            raise ValueError(f"{name}: {value!r} must be a non-empty tuple of positive "
                             "integers like (64, 64)")
    for name, (low, high, low_in, high_in) in _FLOAT_RANGES.items():
        given = np.asarray(getattr(config, name), np.float64)
        if high == float("inf"):  # what float32 can hold
            high, high_in = float(np.finfo(np.float32).max), True
        with np.errstate(over="ignore"):
            values = given.astype(np.float32).astype(np.float64)
        ok = ((values >= low) if low_in else (values > low)) & (
            (values <= high) if high_in else (values < high))
        if not ok.all():
            bad = given.ravel()[int(np.argmin(ok.ravel()))]
            raise ValueError(f"{name}: {bad:g} is outside the allowed range "
                             f"{_range_text(low, high, low_in, high_in)}")
    if config.batch_size % config.num_minibatches:
        raise ValueError(
            f"num_minibatches: {config.num_minibatches} does not divide num_envs*num_steps = "
            f"{config.num_envs}*{config.num_steps} = {config.batch_size}")
    if config.fisher_subsample > config.batch_size:
        raise ValueError(f"fisher_subsample: {config.fisher_subsample} exceeds the batch "
                         f"(num_envs*num_steps = {config.batch_size})")
    if config.total_timesteps < config.batch_size:
        raise ValueError(
            f"total_timesteps: {config.total_timesteps} is less than one update "
            f"(num_envs*num_steps = {config.batch_size})")
    _check_drift(config)


def _check_drift(config: Config, size: int = 3) -> None:
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


def make_config(algo: str, env="gymnax/CartPole-v1", **overrides) -> Config:
    """A validated :class:`Config` for ``algo`` on ``env``.

    Args:
      algo: a registered algorithm name (``pgjax list`` shows them).
      env: an environment id (``"gymnax/CartPole-v1"`` or ``"CartPole-v1"``) or an environment
        object following the :mod:`pgjax.envs` protocol.
      **overrides: any :class:`Config` field; strings are parsed (as from the CLI).

    Example:
      >>> import pgjax
      >>> pgjax.make_config("ppo", "CartPole-v1", learning_rate=1e-3).learning_rate
      0.001
      >>> def my_drift(ratio, advantage):  # any function of (r, Â), one value per sample
      ...     return abs(advantage) * (ratio - 1.0) ** 4
      >>> pgjax.make_config("mirror", "CartPole-v1", drift=my_drift).algo
      'mirror'
      >>> pgjax.make_config("mirror", drift=lambda r, a: (r * a).sum())
      Traceback (most recent call last):
      ...
      ValueError: drift: <lambda> returns shape () for ratio and advantage of shape (3,); a drift must return one value per sample
    """
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: unknown algorithm {algo!r} (known: {', '.join(ALGORITHMS)})"
                         f"{_close(algo, ALGORITHMS)}")
    spec = ALGORITHMS[algo]
    if isinstance(env, str):
        env = envs_lib.canonical_id(env)
        preset = spec.presets.get(env, spec.presets.get(env.removeprefix("gymnax/"), {}))
    else:
        envs_lib.make(env)  # checks the protocol
        preset = {}
    for name in overrides:
        if name not in _FIELDS or name in ("algo", "env"):
            raise ValueError(f"{name}: not a config field{_close(name, _FIELDS)}")
    values = {**spec.defaults, **preset, **overrides}
    if spec.drift_params is not None and values.get("drift_params") is None:
        values["drift_params"] = spec.drift_params()
    values = {k: _coerce(k, v) for k, v in values.items()}
    if "env_kwargs" in values and isinstance(values["env_kwargs"], dict):
        values["env_kwargs"] = tuple(sorted(values["env_kwargs"].items()))
    config = Config(algo=algo, env=env, **values)
    validate(config)
    try:  # builds the env: its own checks of env_kwargs run here
        if config.env_kwargs or config.action_head == "tanh":
            check_action_head(config, envs_lib.make(config.env, **dict(config.env_kwargs)))
        return resolve_defaults(config)
    except TypeError as error:  # e.g. an unexpected keyword of a Brax env constructor
        detail = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(f"env_kwargs: {dict(config.env_kwargs)} rejected by "
                         f"{config.env_id}: {detail}") from None


def check_action_head(config: Config, env) -> None:
    """Refuse ``action_head="tanh"`` on a Box action space with an infinite bound: the squashed
    action ``low + (tanh(u) + 1)·(high − low)/2`` is NaN (∞ − ∞ or 0·∞) there.

    Example:
      >>> import pgjax
      >>> from pgjax import envs
      >>> from pgjax.config import check_action_head
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


def config_from_dict(values: dict) -> Config:
    """The config that :meth:`Config.to_dict` described (as in a run's ``summary.json``)."""
    fields = {k: v for k, v in values.items()
              if k in _FIELDS and k not in ("algo", "env") and v is not None}
    if "env_kwargs" in fields:
        fields["env_kwargs"] = {k: v for k, v in fields["env_kwargs"]}
    return make_config(values["algo"], values["env"], **fields)


def normalizes_by_default(env) -> bool:
    """Observation and reward normalisation default to on for continuous actions (continuous
    control barely learns without them) and off for discrete ones."""
    return isinstance(env.action_space, envs_lib.Box)


def resolve_defaults(config: Config) -> Config:
    """``config`` with its automatic choices decided for its env: the ``None`` normalisation
    switches, and ``torso="auto"``."""
    if config.normalize_observations is not None and config.normalize_rewards is not None \
            and config.torso != "auto":
        return config
    env = envs_lib.make(config.env, **dict(config.env_kwargs))
    on = normalizes_by_default(env)
    return config.replace(
        normalize_observations=on if config.normalize_observations is None
        else config.normalize_observations,
        normalize_rewards=on if config.normalize_rewards is None else config.normalize_rewards,
        torso=resolve_torso(config.torso, env.observation_space.shape))


def stack_configs(configs: list[Config]) -> Config:
    """Stack configs that differ only in leaves into one config with a leading batch axis, for
    ``jax.vmap(lambda c, k: make_train(c)(k))(stacked, keys)`` (one compile for the grid)."""
    treedefs = {jax.tree.structure(c) for c in configs}
    if len(treedefs) != 1:
        raise ValueError("stack_configs: configs differ in static (shape) fields; "
                         "only continuous hyperparameters can be stacked")
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]),
                        *configs)
