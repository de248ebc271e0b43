"""Discovered Policy Optimisation (Lu, Kuba, Letcher, Metz, Schroeder de Witt & Foerster,
NeurIPS 2022, arXiv 2210.05639) as a drift.

``D = relu((r − 1)·Â − α·tanh((r − 1)·Â/α))`` for ``Â ≥ 0`` and
``relu(log(r)·Â − β·tanh(log(r)·Â/β))`` for ``Â < 0`` (:func:`pgjax.drifts.dpo`, from the
log-ratio so that it holds where ``exp(log r)`` underflows). The shared first-order update and
PPO's presets.

Example:
  >>> import pgjax
  >>> config = pgjax.make_config("dpo", "CartPole-v1", dpo_alpha=1.5)
  >>> config.hparams.dpo_alpha, config.dpo_beta
  (1.5, 0.6)
"""

from flax import struct

from pgjax import drifts
from pgjax.algorithms.base import Algorithm, hyperparameter
from pgjax.algorithms.ppo import NAMED_PRESETS, PRESETS


@struct.dataclass
class DPOHyperparameters:
    dpo_alpha: float = hyperparameter(2.0, low=0.0, doc="DPO drift α (Â ≥ 0 branch)")
    dpo_beta: float = hyperparameter(0.6, low=0.0, doc="DPO drift β (Â < 0 branch)")


def drift(config, x):
    hp = config.hparams
    return drifts.dpo(x.ratio, x.advantage, hp.dpo_alpha, hp.dpo_beta, log_ratio=x.log_ratio)


DPO = Algorithm(
    name="dpo",
    hyperparameters=DPOHyperparameters,
    drift=drift,
    presets=PRESETS,
    named_presets=NAMED_PRESETS,
    description="Discovered Policy Optimisation (Lu et al. 2022): closed-form drift (α, β)",
)
