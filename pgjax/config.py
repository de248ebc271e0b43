"""Training configurations: frozen pytrees whose shape fields are static and whose continuous
hyperparameters are leaves, so ``jax.vmap`` over a stack of configs trains a grid in one compile.

``make_config(algo, env, **overrides)`` merges, in order: the field defaults below, the
algorithm's defaults, the registered preset for (algorithm, env), and the overrides; then
validates every field on the host (one-line ``ValueError`` naming field, value and allowed range).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from pgjax import drifts
from pgjax import envs as envs_lib
from pgjax.algorithms import ALGORITHMS, Algorithm
from pgjax.algorithms.base import fields as algorithm_fields
from pgjax.networks import resolve_torso
from pgjax.validation import (check_action_head, check_name, close_names, coerce, kind_of,
                              validate)

__all__ = ["ALGORITHMS", "Algorithm", "Config", "make_config", "normalizes_by_default",
           "resolve_defaults", "stack_configs"]


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
    actor_hidden: tuple = _static((64, 64))  #: actor MLP hidden sizes
    critic_hidden: tuple = _static((64, 64))  #: critic MLP hidden sizes
    #: the hidden layers' nonlinearity: "tanh", "swish" (Brax's), "relu" or "elu"
    activation: str = _static("tanh")
    #: "auto" (set by make_config: "cnn" for image observations [H, W, C], else "mlp"), or either
    torso: str = _static("auto")
    conv_channels: tuple = _static((16,))  #: channels of the CNN torso's 3×3 conv layers
    #: "none" (feed-forward actor and critic) or "gru": each gets a GRU cell between its torso
    #: and its MLP head (:class:`pgjax.recurrent.RecurrentActorCritic`), trained by truncated
    #: BPTT over each env's rollout, minibatches of whole env sequences
    memory: str = _static("none")
    memory_size: int = _static(128)  #: the GRU's hidden width (with memory="gru")
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
    #: an update with a non-finite reward, loss, gradient or parameter keeps the old parameters
    #: (counted in the ``nonfinite`` metric) instead of stopping the run
    skip_nonfinite: bool = _static(False)
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
    drift_params: Any = None  #: learned-drift parameters (lpo, talpo, or the user's drift)
    #: the algorithm's own hyperparameters (:attr:`pgjax.algorithms.Algorithm.hyperparameters`;
    #: read as ``config.hparams.name`` or ``config.name``)
    hparams: Any = None

    def __getattr__(self, name):
        """``config.max_kl`` for ``config.hparams.max_kl``: an algorithm's hyperparameters
        read like the run settings."""
        hparams = self.__dict__.get("hparams")
        if hparams is not None and not name.startswith("__") and \
                name in algorithm_fields(hparams):
            return getattr(hparams, name)
        raise AttributeError(f"Config of {self.__dict__.get('algo')!r} has no field or "
                             f"hyperparameter {name!r}")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def recurrent(self) -> bool:
        """Whether the policy has memory: the update's samples are whole env sequences."""
        return self.memory != "none"

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
            elif f.name == "hparams":
                out.update({k: _plain(getattr(v, k)) for k in algorithm_fields(v)}
                           if v is not None else {})
                continue
            out[f.name] = _plain(v)
        return out


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else value


def _replace(self, **updates):
    """``dataclasses.replace``, hyperparameter names going into ``hparams``."""
    names = algorithm_fields(self.hparams) if self.hparams is not None else {}
    own = {k: updates.pop(k) for k in list(updates) if k in names}
    if own:
        updates["hparams"] = dataclasses.replace(updates.get("hparams", self.hparams), **own)
    return dataclasses.replace(self, **updates)


Config.replace = _replace


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
def make_config(algo: str, env="gymnax/CartPole-v1", preset: str | None = None,
                **overrides) -> Config:
    """A validated :class:`Config` for ``algo`` on ``env``.

    Args:
      algo: a registered algorithm name (``pgjax list`` shows them).
      env: an environment id (``"gymnax/CartPole-v1"`` or ``"CartPole-v1"``) or an environment
        object following the :mod:`pgjax.envs` protocol.
      preset: ``None`` for the algorithm's registered preset for ``env`` (if any), or the name
        of another of its presets for ``env`` (``Algorithm.named_presets``: e.g.
        ``"playground"``, Playground's published Brax-PPO settings for its DM Control tasks).
      **overrides: any :class:`Config` field or hyperparameter of ``algo``; strings are
        parsed (as from the CLI).

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
      >>> pgjax.make_config("ppo", max_kl=0.02)
      Traceback (most recent call last):
      ...
      ValueError: max_kl is not a hyperparameter of ppo; its hyperparameters are: none
    """
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: unknown algorithm {algo!r} (known: {', '.join(ALGORITHMS)})"
                         f"{close_names(algo, ALGORITHMS)}")
    spec = ALGORITHMS[algo]
    if isinstance(env, str):
        env = envs_lib.canonical_id(env)
    else:
        envs_lib.make(env)  # checks the protocol
    preset = preset_values(spec, env, preset)
    own = algorithm_fields(spec.hyperparameters)
    for name in overrides:
        check_name(algo, name, own, _FIELDS)
    values = {**spec.defaults, **preset, **overrides}
    if spec.drift_params is not None and values.get("drift_params") is None:
        values["drift_params"] = spec.drift_params()
    values = {k: coerce(k, v, kind_of(k, spec.hyperparameters)) for k, v in values.items()}
    if "env_kwargs" in values and isinstance(values["env_kwargs"], dict):
        values["env_kwargs"] = tuple(sorted(values["env_kwargs"].items()))
    hparams = spec.hyperparameters(**{k: values.pop(k) for k in list(values) if k in own})
    config = Config(algo=algo, env=env, hparams=hparams, **values)
    validate(config)
    try:  # builds the env: its own checks of env_kwargs run here
        if config.env_kwargs or config.action_head == "tanh":
            check_action_head(config, envs_lib.make(config.env, **dict(config.env_kwargs)))
        return resolve_defaults(config)
    except TypeError as error:  # e.g. an unexpected keyword of a Brax env constructor
        detail = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(f"env_kwargs: {dict(config.env_kwargs)} rejected by "
                         f"{config.env_id}: {detail}") from None


def preset_values(spec: Algorithm, env, name: str | None = None) -> dict:
    """The overrides ``spec`` registers for ``env`` (an id, or ``{}`` for an env object):
    its default preset, or its preset called ``name``; a name it lacks for ``env`` is refused
    in one line."""
    env_id = env if isinstance(env, str) else None
    if name is None:
        if env_id is None:
            return {}
        return spec.presets.get(env_id, spec.presets.get(env_id.removeprefix("gymnax/"), {}))
    if name not in spec.named_presets:
        names = ", ".join(spec.named_presets) or "none"
        raise ValueError(f"preset: {spec.name} has no preset {name!r} (its named presets: "
                         f"{names})")
    covered = sorted(spec.named_presets[name])
    if env_id not in covered:
        raise ValueError(f"preset: {spec.name}'s {name!r} preset has no settings for "
                         f"{env_id or 'an env object'}; it covers {', '.join(covered[:3])}"
                         f"{f' and {len(covered) - 3} more' if len(covered) > 3 else ''}")
    return spec.named_presets[name][env_id]


def config_from_dict(values: dict) -> Config:
    """The config that :meth:`Config.to_dict` described (as in a run's ``summary.json``)."""
    own = ALGORITHMS[values["algo"]].hyperparameter_names if values["algo"] in ALGORITHMS else ()
    fields = {k: v for k, v in values.items()  # an older file's other algorithms' fields: out
              if (k in _FIELDS or k in own) and k not in ("algo", "env") and v is not None}
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
