"""FixPO: after every update, max_s KL(π_old ‖ π) ≤ ε_KL on the training batch — also when
the primary phase overshoots and the fix-up phase has to work; a capped fix-up is reported.
The update follows the authors' code: the fix-up steps the actor only, β's fix-up steps use the
pre-step KL, the primary loss carries β̄·KL, the fix-up cuts its own minibatches."""

import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import pgjax
from pgjax import trainer
from pgjax.algorithms import fixpo

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


@pytest.mark.slow
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


#: One update of 3 epochs × 4 minibatches on 256 samples; fix-up minibatches of 100 (two: 100
#: and 156, the remainder merged into the last); the joint gradient clip out of the way.
ONE = dict(num_envs=4, num_steps=64, num_epochs=3, num_minibatches=4, total_timesteps=256,
           fixup_minibatch_size=100, max_grad_norm=1e6, learning_rate=3e-2)
NEVER = 1e6  #: an ε_KL the fix-up never reaches
ONE_CASES = {
    "fixup": dict(eps_kl=0.005),  # the primary phase overshoots: the fix-up works
    "no_fixup": dict(eps_kl=NEVER),  # the same, the fix-up never triggers
    "beta_0": dict(eps_kl=NEVER, beta_lr=0.0, beta_init=0.0),  # no penalty
    "beta_30": dict(eps_kl=NEVER, beta_lr=0.0, beta_init=30.0),  # a fixed large penalty
}


@pytest.fixture(scope="module")
def one_update():
    """The ONE_CASES vmapped over stacked configs, same key: one compile, one update each."""
    configs = [pgjax.make_config("fixpo", "CartPole-v1", **ONE, **c) for c in ONE_CASES.values()]
    state, metrics = jax.jit(jax.vmap(lambda c: pgjax.make_train(c)(jax.random.key(3))))(
        pgjax.stack_configs(configs))
    return {name: (configs[i], jax.tree.map(lambda x: x[i], state),
                   {k: np.asarray(v[i]) for k, v in metrics.items()})
            for i, name in enumerate(ONE_CASES)}


def test_fixup_steps_the_actor_only(one_update):
    """The critic (and its Adam moments and step count) come out of an update whose fix-up did
    work exactly as from the same update without a fix-up; the actor does not."""
    config, fixed, metrics = one_update["fixup"]
    _, plain, plain_metrics = one_update["no_fixup"]
    steps = int(metrics["fixup_steps"][0])
    assert steps > 0 and plain_metrics["fixup_steps"][0] == 0
    _check_bound(config, metrics)
    np.testing.assert_array_equal(ravel_pytree(fixed.params.critic)[0],
                                  ravel_pytree(plain.params.critic)[0])
    for a, b in zip(jax.tree.leaves(fixed.opt_state.critic_adam),
                    jax.tree.leaves(plain.opt_state.critic_adam)):
        np.testing.assert_array_equal(a, b)
    actor_change = np.linalg.norm(ravel_pytree(fixed.params.actor)[0]
                                  - ravel_pytree(plain.params.actor)[0])
    assert actor_change > 0.1, actor_change
    # torch counts Adam steps per parameter: the actor's count includes the fix-up steps.
    primary = config.num_epochs * config.num_minibatches
    assert int(fixed.opt_state.critic_adam.count) == primary
    assert int(fixed.opt_state.actor_adam.count) == primary + steps


def test_primary_phase_carries_the_kl_penalty(one_update):
    """With the fix-up out of reach and β fixed, β = 30 keeps the policy far closer to π_old
    than β = 0 does: the primary loss has the β̄·mean KL term."""
    _, _, free = one_update["beta_0"]
    _, _, penalised = one_update["beta_30"]
    assert free["fixup_steps"][0] == penalised["fixup_steps"][0] == 0
    assert float(free["beta"][0]) == 0.0 and float(penalised["beta"][0]) == 30.0
    assert penalised["max_kl"][0] < 0.1 * free["max_kl"][0], (penalised["max_kl"],
                                                              free["max_kl"])
    assert penalised["drift"][0] > 0 and free["drift"][0] == 0


@pytest.mark.slow
def test_primary_phase_clips_the_joint_gradient_norm():
    """One primary step with Adam's ε so large that Adam is gradient descent (step ≈ lr·g/ε):
    with the gradient clipped, actor and critic together move lr·max_grad_norm/ε — one clip
    over both, as ``clip_grad_norm_`` over actor + critic (not each by its own norm, nor both
    by the actor's)."""
    config = pgjax.make_config(
        "fixpo", "CartPole-v1", num_envs=4, num_steps=64, num_epochs=1, num_minibatches=1,
        total_timesteps=256, eps_kl=NEVER, adam_eps=1e3, max_grad_norm=0.5, learning_rate=100.0)
    key = jax.random.key(3)
    before = trainer.make_trainer(config).init(key).params
    state, metrics = jax.jit(pgjax.make_train(config))(key)
    assert float(metrics["grad_norm"][0]) > 2 * config.max_grad_norm  # the clip is active
    moved = [np.linalg.norm(ravel_pytree(getattr(state.params, part))[0]
                            - ravel_pytree(getattr(before, part))[0])
             for part in ("actor", "critic")]
    assert min(moved) > 0
    expected = config.learning_rate * config.max_grad_norm / config.adam_eps
    np.testing.assert_allclose(np.hypot(*moved), expected, rtol=2e-3)


def test_fixup_beta_steps_use_the_pre_step_kl(monkeypatch):
    """Every β step the fix-up takes is driven by the KL of a violating minibatch (> ε_KL),
    measured before the policy step — not the KL after it, which is often back inside."""
    calls = []
    real = fixpo.beta_loss_grad

    def recording(max_kl, eps_kl, target_coef):
        jax.debug.callback(lambda k: calls.append(float(k)), max_kl, ordered=True)
        return real(max_kl, eps_kl, target_coef)

    monkeypatch.setattr(fixpo, "beta_loss_grad", recording)
    config = pgjax.make_config(
        "fixpo", "CartPole-v1", num_envs=4, num_steps=64, num_epochs=1, num_minibatches=2,
        total_timesteps=256 * 8, learning_rate=3e-2, eps_kl=0.005, fixup_minibatch_size=100)
    _, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(3))
    steps = np.asarray(metrics["fixup_steps"]).astype(int)
    assert steps.sum() > 10
    assert len(calls) == config.num_updates * config.num_minibatches + steps.sum()
    fixup_kls, i = [], 0  # one epoch: each update's β steps are 2 primary, then the fix-up's
    for k in steps:
        fixup_kls += calls[i + config.num_minibatches:i + config.num_minibatches + k]
        i += config.num_minibatches + k
    assert min(fixup_kls) > config.eps_kl, min(fixup_kls)


def test_fixup_chunks_partition_the_batch():
    for batch, size in ((256, 100), (256, 64), (100, 256), (7, 7), (2048, 1024), (9, 1)):
        positions, mask = fixpo.fixup_chunks(batch, size)
        assert positions.shape[0] == max(1, batch // size)
        assert sorted(positions[mask].tolist()) == list(range(batch))
        lengths = mask.sum(1)
        assert (lengths[:-1] == size).all() and lengths[-1] == batch - size * (len(lengths) - 1)


@pytest.mark.slow
def test_fixup_uses_its_own_minibatch_size():
    """Fix-up minibatches of one sample, one pass per epoch: more fix-up steps in an update
    than the primary minibatches could give, on a batch (256) the primary phase cuts in 2."""
    config, metrics = _train(learning_rate=3e-2, eps_kl=0.005, fixup_minibatch_size=1,
                             fixup_max_passes=1, total_timesteps=4 * 64 * 3)
    assert int(np.max(metrics["fixup_steps"])) > config.num_epochs * config.num_minibatches
    np.testing.assert_array_equal(
        metrics["gradient_steps"], config.num_epochs * config.num_minibatches
        + metrics["fixup_steps"])


def test_fixup_minibatch_size_is_validated():
    with pytest.raises(ValueError, match="fixup_minibatch_size: 0 must be a positive integer"):
        pgjax.make_config("fixpo", "CartPole-v1", fixup_minibatch_size=0)
    assert pgjax.make_config("fixpo", "CartPole-v1").fixup_minibatch_size == 1024
