"""Learned drifts: LPO (Lu et al., NeurIPS 2022, arXiv 2210.05639) and TA-LPO (Jackson et al.,
ICLR 2024, arXiv 2402.05828), and the drifts pgjax discovered with them.

``D = relu(D_PPO·[lpo_ppo_init] + f(x) − 10⁻⁴)`` with ``f(x) = w_outᵀ tanh(W_hiddenᵀ x)`` on
the 8 LPO features of (r, Â) (:func:`pgjax.drifts.lpo`), or on those and the same times the
training progress n/N for TA-LPO (16 features, :func:`pgjax.drifts.talpo`). The network's
weights are the run's ``drift_params`` (a pytree of leaves: a population of drifts vmaps, as
:mod:`pgjax.meta` does); at their default zeros, with ``lpo_ppo_init``, both are PPO. The
shared first-order update and PPO's presets.

Each drift in ``pgjax/drift_params/<name>.npz`` is registered as an algorithm of that name,
LPO or TA-LPO by its number of input features, with those parameters as default.
"""

import dataclasses

import numpy as np
from flax import struct

from pgjax import drifts
from pgjax.algorithms.base import Algorithm, hyperparameter
from pgjax.algorithms.ppo import NAMED_PRESETS, PRESETS


@struct.dataclass
class LearnedDriftHyperparameters:
    lpo_ppo_init: bool = hyperparameter(
        True, doc="add PPO's drift inside the ReLU (the network learns a correction to PPO)")


def lpo_drift(config, x):
    return drifts.lpo(config.drift_params, x.ratio, x.advantage,
                      ppo_init=config.hparams.lpo_ppo_init, epsilon=config.clip_epsilon,
                      log_ratio=x.log_ratio)


def talpo_drift(config, x):
    return drifts.talpo(config.drift_params, x.ratio, x.advantage, x.progress,
                        ppo_init=config.hparams.lpo_ppo_init, epsilon=config.clip_epsilon,
                        log_ratio=x.log_ratio)


LPO = Algorithm(
    name="lpo",
    hyperparameters=LearnedDriftHyperparameters,
    drift=lpo_drift,
    drift_params=drifts.init_lpo,
    presets=PRESETS,
    named_presets=NAMED_PRESETS,
    description="Learned PO (Lu et al. 2022): drift network of (r, Â); drift_params "
                "default zero (= PPO with lpo_ppo_init)",
)

TALPO = Algorithm(
    name="talpo",
    hyperparameters=LearnedDriftHyperparameters,
    drift=talpo_drift,
    drift_params=drifts.init_talpo,
    presets=PRESETS,
    named_presets=NAMED_PRESETS,
    description="Temporally-aware LPO (Jackson et al. 2024): LPO features × progress",
)


def shipped_algorithm(name: str) -> Algorithm:
    """A shipped learned drift (:func:`pgjax.drifts.shipped`) as an algorithm: LPO or TA-LPO
    by its number of input features, with the shipped parameters as default."""
    with np.load(drifts.SHIPPED_DIR / f"{name}.npz") as data:  # numpy only: importing pgjax
        features = data["w_hidden"].shape[0]  # must not start XLA (jax.distributed needs that)
    base = TALPO if features == drifts.TALPO_FEATURES else LPO
    return dataclasses.replace(
        base, name=name, drift_params=lambda: drifts.load(name),
        description=f"{base.name} with the drift pgjax discovered (pgjax/drift_params/"
                    f"{name}.json: how)")
