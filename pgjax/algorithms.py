"""The algorithm registry: each first-order algorithm is a drift bound to config fields.

An :class:`Algorithm`'s ``drift(config, inputs)`` maps the config's drift hyperparameters (pytree
leaves, so they can be vmapped over) and the :class:`pgjax.updates.DriftInputs` of a minibatch to
the per-sample drift D of ``E[r·Â − D]`` (Mirror Learning, Kuba et al. 2022, arXiv 2201.02373).

Example:
  >>> from pgjax.algorithms import ALGORITHMS
  >>> sorted(ALGORITHMS)
  ['dpo', 'lpo', 'mdpo', 'mirror', 'ppo', 'spo', 'talpo']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pgjax import drifts


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A registered algorithm: how it updates, its drift and its default hyperparameters."""

    name: str
    update: str  #: "mirror": epochs × minibatches of first-order steps on E[r·Â − D]
    drift: Callable  #: ``drift(config, DriftInputs) -> D`` per sample
    defaults: dict
    presets: dict  #: env id (a gymnax id may drop its "gymnax/") → overrides
    description: str
    drift_params: Callable[[], Any] | None = None  #: default ``config.drift_params`` (learned)
    #: the drift reads ``DriftInputs.kl``; only then is π_old kept and KL(π‖π_old) computed
    #: (5% of a PPO update on CPU, measured) and ``kl_new_old`` reported (NaN otherwise)
    uses_kl: bool = False


def user_drift(config, x):
    """The ``mirror`` algorithm's drift: ``config.drift(ratio, advantage)``, or
    ``config.drift(config.drift_params, ratio, advantage)`` when ``drift_params`` is set."""
    if config.drift_params is None:
        return config.drift(x.ratio, x.advantage)
    return config.drift(config.drift_params, x.ratio, x.advantage)


#: Settings the PPO-family drifts share per env (PPO's tuned presets).
_PRESETS = {
    "CartPole-v1": {},
    "Pendulum-v1": dict(
        num_envs=16, num_steps=256, num_epochs=10, num_minibatches=8,
        learning_rate=1e-3, gamma=0.95, ent_coef=0.0,
        max_grad_norm=0.5, total_timesteps=1_000_000,
    ),
    # Brax locomotion: the MuJoCo PPO settings (batch 2048, 10 epochs of 64-sample minibatches,
    # lr 3e-4, no entropy bonus; Schulman et al. 2017 / the 37 details) over 32 envs.
    **{f"brax/{name}": dict(
        num_envs=32, num_steps=64, num_epochs=10, num_minibatches=32, learning_rate=3e-4,
        ent_coef=0.0, total_timesteps=3_000_000,
    ) for name in ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "pusher",
                   "reacher", "swimmer", "walker2d")},
}

ALGORITHMS: dict[str, Algorithm] = {
    "ppo": Algorithm(
        name="ppo",
        update="mirror",
        drift=lambda c, x: drifts.ppo(x.ratio, x.advantage, c.clip_epsilon),
        defaults={},
        presets=_PRESETS,
        description="PPO-clip (Schulman et al. 2017) as the drift relu((r − clip(r))·Â)",
    ),
    "spo": Algorithm(
        name="spo",
        update="mirror",
        drift=lambda c, x: drifts.spo(x.ratio, x.advantage, c.clip_epsilon),
        defaults={},
        presets=_PRESETS,
        description="Simple Policy Optimization (Xie et al. 2025): drift |Â|(r − 1)²/(2ε)",
    ),
    "dpo": Algorithm(
        name="dpo",
        update="mirror",
        drift=lambda c, x: drifts.dpo(x.ratio, x.advantage, c.dpo_alpha, c.dpo_beta),
        defaults={},
        presets=_PRESETS,
        description="Discovered Policy Optimisation (Lu et al. 2022): closed-form drift (α, β)",
    ),
    "mdpo": Algorithm(
        name="mdpo",
        update="mirror",
        drift=lambda c, x: drifts.mdpo(x.kl, x.progress),
        uses_kl=True,
        # m = 10 full-batch Adam steps per update at a constant learning rate (the paper's
        # multistep-SGD); one minibatch, so advantages are standardised over the whole batch;
        # the growing KL coefficient plays the part of a learning-rate decay.
        defaults=dict(num_epochs=10, num_minibatches=1, anneal_lr=False, learning_rate=1e-3),
        presets={
            "CartPole-v1": {},
            "Pendulum-v1": dict(
                num_envs=16, num_steps=256, learning_rate=5e-4, gamma=0.95, ent_coef=0.0,
                total_timesteps=1_000_000,
            ),
        },
        description="Mirror Descent PO (Tomar et al. 2022): drift KL(π‖π_old)/(1 − k/K), "
                    "full-batch steps",
    ),
    "lpo": Algorithm(
        name="lpo",
        update="mirror",
        drift=lambda c, x: drifts.lpo(c.drift_params, x.ratio, x.advantage,
                                      ppo_init=c.lpo_ppo_init, epsilon=c.clip_epsilon),
        defaults={},
        presets=_PRESETS,
        description="Learned PO (Lu et al. 2022): drift network of (r, Â); drift_params "
                    "default zero (= PPO with lpo_ppo_init)",
        drift_params=drifts.init_lpo,
    ),
    "talpo": Algorithm(
        name="talpo",
        update="mirror",
        drift=lambda c, x: drifts.talpo(c.drift_params, x.ratio, x.advantage, x.progress,
                                        ppo_init=c.lpo_ppo_init, epsilon=c.clip_epsilon),
        defaults={},
        presets=_PRESETS,
        description="Temporally-aware LPO (Jackson et al. 2024): LPO features × progress",
        drift_params=drifts.init_talpo,
    ),
    "mirror": Algorithm(
        name="mirror",
        update="mirror",
        drift=user_drift,
        defaults={},
        presets=_PRESETS,
        description="any drift: make_config('mirror', env, drift=fn), fn(ratio, advantage) "
                    "or fn(drift_params, ratio, advantage)",
    ),
}
