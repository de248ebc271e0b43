"""FixPO: after every update, max_s KL(π_old ‖ π) ≤ ε_KL on the training batch — also when
the primary phase overshoots and the fix-up phase has to work; a capped fix-up is reported."""

import jax
import numpy as np
import pytest

import pgjax
from pgjax import fixpo

TINY = dict(num_envs=4, num_steps=64, num_epochs=3, num_minibatches=2,
            total_timesteps=4 * 64 * 10)
#: A learning rate 30× the default and a bound 25× tighter: the primary phase overshoots.
HARD = dict(learning_rate=1e-2, eps_kl=0.02)


def _train(**overrides):
    config = pgjax.make_config("fixpo", "CartPole-v1", **{**TINY, **overrides})
    return config, jax.jit(pgjax.make_train(config))(jax.random.key(2))[1]


@pytest.fixture(scope="module")
def runs():
    """The defaults and HARD, vmapped over the two stacked configs: one compile."""
    configs = [pgjax.make_config("fixpo", "CartPole-v1", **TINY),
               pgjax.make_config("fixpo", "CartPole-v1", **TINY, **HARD)]
    keys = jax.random.split(jax.random.key(2), 2)
    _, metrics = jax.jit(jax.vmap(lambda c, k: pgjax.make_train(c)(k)))(
        pgjax.stack_configs(configs), keys)
    return [(c, {k: v[i] for k, v in metrics.items()}) for i, c in enumerate(configs)]


@pytest.fixture(scope="module")
def default_run(runs):
    return runs[0]


@pytest.fixture(scope="module")
def hard_run(runs):
    return runs[1]


def _check_bound(config, metrics):
    max_kl = np.asarray(metrics["max_kl"])
    assert max_kl.shape == (config.num_updates,)
    assert (max_kl <= config.eps_kl).all(), max_kl
    assert (np.asarray(metrics["kl_bound_held"]) == 1).all()
    steps = config.num_epochs * config.num_minibatches
    np.testing.assert_array_equal(metrics["gradient_steps"], steps + metrics["fixup_steps"])


def test_max_kl_within_eps_after_every_update(default_run):
    config, metrics = default_run
    assert set(metrics) == set(pgjax.METRICS + fixpo.METRICS)
    _check_bound(config, metrics)
    assert float(np.max(metrics["max_kl"])) > 0
    for name in ("policy_loss", "value_loss", "entropy", "beta", "grad_norm"):
        assert np.isfinite(np.asarray(metrics[name])).all(), name


def test_fixup_phase_enforces_the_bound_when_the_primary_phase_overshoots(hard_run):
    config, metrics = hard_run
    _check_bound(config, metrics)
    assert float(np.sum(metrics["fixup_steps"])) > 0  # the fix-up phase did the work
    # max KL far above ε_KL / C_β: β was pushed up from β₀.
    assert float(np.max(metrics["beta"])) > config.beta_init


def test_capped_fixup_is_reported_not_silent():
    config, metrics = _train(**{**HARD, "eps_kl": 1e-4, "fixup_max_passes": 1})
    held = np.asarray(metrics["kl_bound_held"])
    assert (held == 0).any()
    np.testing.assert_array_equal(held == 0, np.asarray(metrics["max_kl"]) > config.eps_kl)


def test_beta_gradient_sign():
    # β rises (negative gradient) exactly when max KL > ε_KL / C_β.
    assert float(fixpo.beta_loss_grad(0.2, 0.5, 3.0)) < 0
    assert float(fixpo.beta_loss_grad(0.1, 0.5, 3.0)) > 0


def test_fixpo_fields_are_validated():
    with pytest.raises(ValueError, match="eps_kl: 0 is outside"):
        pgjax.make_config("fixpo", "CartPole-v1", eps_kl=0.0)
    with pytest.raises(ValueError, match=r"beta_target_coef: 0.5 is outside the allowed range "
                                         r"\[1, "):
        pgjax.make_config("fixpo", "CartPole-v1", beta_target_coef=0.5)
