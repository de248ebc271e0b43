"""Drifts of ``log r`` (DPO, LPO, TA-LPO) get the update's log-ratio ``log π − log π_old``
instead of ``log(exp(log r))``, which is −inf once float32 ``exp`` underflows (log r < −103):
the drift and the loss gradient stay finite there, and ordinary ratios are unchanged."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax import drifts, losses
from pgjax.algorithms import ALGORITHMS
from pgjax.trainer import make_env, make_network
from pgjax.updates import Batch, DriftInputs, mirror_loss

RANDOM_LPO = drifts.init_lpo(jax.random.key(1), scale=0.5)
RANDOM_TALPO = drifts.init_talpo(jax.random.key(2), scale=0.5)

#: The drifts that read log r, each ``drift(ratio, advantage, log_ratio=None)``.
LOG_RATIO_DRIFTS = {
    "dpo": drifts.dpo,
    "dpo alpha 0.5 beta 1.5": functools.partial(drifts.dpo, alpha=0.5, beta=1.5),
    "lpo random": functools.partial(drifts.lpo, RANDOM_LPO),
    "lpo random no ppo-init": functools.partial(drifts.lpo, RANDOM_LPO, ppo_init=False),
    "talpo random": lambda r, a, log_ratio=None: drifts.talpo(RANDOM_TALPO, r, a, 0.3,
                                                              log_ratio=log_ratio),
}
#: log r from ordinary to far below float32 exp's underflow (≈ −103.3).
LOG_RATIOS = jnp.array([-200.0, -150.0, -110.0, -104.0, -20.0, -0.3, 0.0, 0.4, 2.0])[:, None]
ADVANTAGES = jnp.array([-2.0, -0.5, 0.5, 2.0])[None, :]


@pytest.mark.parametrize("name", LOG_RATIO_DRIFTS)
def test_given_log_ratio_equals_log_of_ordinary_ratios(name):
    drift = LOG_RATIO_DRIFTS[name]
    ratio = jnp.linspace(0.05, 3.0, 60)[:, None]
    advantage = jnp.linspace(-3.0, 3.0, 13)[None, :]
    np.testing.assert_array_equal(drift(ratio, advantage, log_ratio=jnp.log(ratio)),
                                  drift(ratio, advantage))


@pytest.mark.parametrize("name", LOG_RATIO_DRIFTS)
def test_drift_and_gradient_are_finite_far_below_exp_underflow(name):
    drift = LOG_RATIO_DRIFTS[name]

    def objective(log_ratio):  # r·Â − D(r, Â), as the update computes it from log r
        ratio = jnp.exp(log_ratio)
        return jnp.sum(ratio * ADVANTAGES - drift(ratio, ADVANTAGES, log_ratio=log_ratio))

    value, grad = jax.value_and_grad(objective)(LOG_RATIOS * jnp.ones_like(ADVANTAGES))
    assert np.isfinite(value) and np.isfinite(np.asarray(grad)).all()
    d = drift(jnp.exp(LOG_RATIOS), ADVANTAGES, log_ratio=LOG_RATIOS)
    assert np.isfinite(np.asarray(d)).all() and (np.asarray(d) >= 0).all()
    # what the pass-through avoids: log(exp(−200)) = log 0 = −inf
    rebuilt = jax.grad(lambda lr: jnp.sum(drift(jnp.exp(lr), ADVANTAGES)))(
        LOG_RATIOS * jnp.ones_like(ADVANTAGES))
    assert not np.isfinite(np.asarray(rebuilt)).all()


def test_policy_objective_passes_the_log_ratio_on():
    log_prob = jnp.array([-1.0, -1.0, -0.7, -0.7])
    old_log_prob = log_prob - jnp.array([-200.0, -200.0, 0.1, -0.1])
    advantage = jnp.array([-1.0, 1.0, 1.0, -1.0])

    def loss(lp, **kwargs):
        return losses.policy_objective(lp, old_log_prob, advantage, drifts.dpo, **kwargs)[0]

    value, grad = jax.value_and_grad(functools.partial(loss, pass_log_ratio=True))(log_prob)
    assert np.isfinite(value) and np.isfinite(np.asarray(grad)).all()
    assert not np.isfinite(np.asarray(jax.grad(loss)(log_prob))).all()  # log(exp(·)) rebuilt
    pl, metrics = losses.policy_loss(log_prob, old_log_prob, advantage, drifts.dpo,
                                     pass_log_ratio=True)
    assert np.isfinite(pl) and np.isfinite(metrics["drift"])
    ordinary = log_prob.at[:2].set(old_log_prob[:2] + 0.2)  # same results for ordinary ratios
    np.testing.assert_array_equal(loss(ordinary, pass_log_ratio=True), loss(ordinary))


@pytest.mark.parametrize("algo", ["dpo", "lpo", "talpo"])
def test_registered_drift_through_mirror_loss_is_finite_at_log_ratio_minus_200(algo):
    drift_params = {"lpo": RANDOM_LPO, "talpo": RANDOM_TALPO}.get(algo)
    config = pgjax.make_config(algo, "CartPole-v1", num_envs=4, num_steps=8,
                               num_minibatches=1, drift_params=drift_params)
    network = make_network(config, make_env(config))
    params = network.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (8, 4))
    action = jnp.arange(8) % 2
    log_prob = network.policy(params.actor, obs).log_prob(action)
    shift = jnp.where(jnp.arange(8) < 4, 200.0, 0.05)  # log r = −200 on half the samples
    batch = Batch(obs, action, log_prob + shift, jnp.zeros(8), jnp.linspace(-1.0, 1.0, 8),
                  jnp.zeros(8))
    drift = functools.partial(ALGORITHMS[algo].drift, config)
    loss, grad = jax.value_and_grad(lambda p: mirror_loss(
        p, batch, network=network, config=config, drift=drift, progress=0.5)[0])(params)
    assert np.isfinite(loss)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grad))


def test_registered_drifts_read_drift_inputs_log_ratio():
    config = pgjax.make_config("dpo", "CartPole-v1")
    ratio, advantage = jnp.array([1.3, 0.0]), jnp.array([-1.0, -1.0])
    log_ratio = jnp.array([jnp.log(1.3), -200.0])
    inputs = DriftInputs(ratio, advantage, None, jnp.float32(0.5), log_ratio)
    d = ALGORITHMS["dpo"].drift(config, inputs)
    np.testing.assert_array_equal(d, drifts.dpo(ratio, advantage, log_ratio=log_ratio))
    assert np.isfinite(np.asarray(d)).all()
