"""An algorithm with its own update rule, written outside pgjax: PPO's adaptive KL penalty.

Schulman, Wolski, Dhariwal, Radford & Klimov 2017 (arXiv 1707.06347), §4: maximise
``E[r·Â] − β·KL`` by the usual epochs of minibatch steps, then adapt β from the KL ``d``
the update reached::

    d < d_targ / 1.5  →  β ← β / 2,        d > 1.5·d_targ  →  β ← β·2

β is state the shared update does not keep, so this algorithm has its own update rule (the
shared first-order update does the gradient steps, with the penalty as its drift). Here the KL
is pgjax's analytic ``KL(π(·|s) ‖ π_old(·|s))`` per sample (the paper writes ``KL[π_old, π]``)
and ``d`` is its mean over the update's steps (the ``kl_new_old`` metric).

Use it by importing this file, which registers it::

    import pgjax, adaptive_kl_ppo
    config = pgjax.make_config("adaptive_kl_ppo", "CartPole-v1", kl_target=0.02)
    result = pgjax.train(config, seeds=4)   # or a sweep over kl_target: one compile
"""

import jax
import jax.numpy as jnp
from flax import struct
from jax.flatten_util import ravel_pytree

import pgjax
from pgjax.algorithms import Algorithm, hyperparameter
from pgjax.updates import UpdateRule, make_optimizer, mirror_update


@struct.dataclass
class AdaptiveKLHyperparameters:
    kl_target: float = hyperparameter(0.01, low=0.0, doc="d_targ, the KL β steers toward")
    kl_beta_init: float = hyperparameter(1.0, low=0.0, doc="β at the first update")


@struct.dataclass
class AdaptiveKLState:
    adam: object  #: Adam over the raveled actor and critic, as the shared update keeps it
    beta: jax.Array  #: the KL coefficient β


def make_update(config, network) -> UpdateRule:
    optimizer = make_optimizer(config)  # the run's Adam, clip and learning-rate schedule
    hp = config.hparams

    def init(params):
        return AdaptiveKLState(optimizer.init(ravel_pytree(params)[0]),
                               jnp.asarray(hp.kl_beta_init, jnp.float32))

    def update(params, state, batch, key, progress):
        params, adam, metrics = mirror_update(
            params, state.adam, batch, key, network=network, optimizer=optimizer,
            config=config, drift=lambda x: state.beta * x.kl, progress=progress, with_kl=True)
        kl = metrics["kl_new_old"]
        beta = jnp.where(kl < hp.kl_target / 1.5, state.beta / 2,
                         jnp.where(kl > 1.5 * hp.kl_target, state.beta * 2, state.beta))
        return params, AdaptiveKLState(adam, beta), {**metrics, "kl_beta": beta}

    return UpdateRule(init, update)


ADAPTIVE_KL_PPO = Algorithm(
    name="adaptive_kl_ppo",
    hyperparameters=AdaptiveKLHyperparameters,
    make_update=make_update,
    metrics=("kl_beta",),  # reported on top of pgjax.METRICS (β after this update's change)
    description="PPO with the adaptive KL penalty (Schulman et al. 2017, §4)",
)

pgjax.register(ADAPTIVE_KL_PPO)
