"""Simple Policy Optimization (Xie et al. 2025, arXiv 2401.16025) as a drift.

``D = |Â|·(r − 1)²/(2ε)`` (:func:`pgjax.drifts.spo`): a quadratic penalty whose maximiser
over r is ``1 + sign(Â)·ε``, so the ratio is pulled back toward PPO's clip range with a
gradient that never vanishes. The shared first-order update (:mod:`pgjax.algorithms.ppo`),
PPO's presets, ε = the run's ``clip_epsilon``; no hyperparameter of its own.
"""

from pgjax import drifts
from pgjax.algorithms.base import Algorithm
from pgjax.algorithms.ppo import NAMED_PRESETS, PRESETS


def drift(config, x):
    """|Â|·(r − 1)²/(2ε), ε = ``config.clip_epsilon``."""
    return drifts.spo(x.ratio, x.advantage, config.clip_epsilon)


SPO = Algorithm(
    name="spo",
    drift=drift,
    presets=PRESETS,
    named_presets=NAMED_PRESETS,
    description="Simple Policy Optimization (Xie et al. 2025): drift |Â|(r − 1)²/(2ε)",
)
