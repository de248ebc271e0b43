"""MDPO as in the authors' code: ``policy_steps`` full-batch policy steps on
E[r·Â] − KL(π‖π_old)/t_k, then the value function alone on shuffled minibatches, each phase with
its own Adam (its step count observable in the optimiser state)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import pgjax
from pgjax import drifts, trainer
from pgjax.algorithms import mdpo
from pgjax.updates import Batch

SMALL = dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=4, policy_steps=3,
             total_timesteps=4 * 32 * 4)


@pytest.fixture(scope="module")
def setup():
    """Pendulum (a Gaussian policy, so KL new‖old ≠ old‖new), its network, the MDPO rule and
    a synthetic batch sampled from the initial policy."""
    config = pgjax.make_config("mdpo", "Pendulum-v1", **SMALL)
    network = trainer.make_network(config, trainer.make_env(config))
    rule = trainer.make_update_rule(config, network)
    params = network.init(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 4)
    obs = jax.random.normal(keys[0], (config.batch_size, 3))
    policy = network.policy(params.actor, obs)
    action = policy.sample(keys[1])
    batch = Batch(obs, action, policy.log_prob(action), network.value(params.critic, obs),
                  jax.random.normal(keys[2], (config.batch_size,)) * 3.0 + 1.0,
                  jax.random.normal(keys[3], (config.batch_size,)))
    update = jax.jit(lambda p, s, key: rule.update(p, s, batch, key, 0.25))
    return config, network, rule, params, batch, update


def _flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


def _adam_counts(opt_state):
    states = [s for s in jax.tree.leaves(
        opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
        if isinstance(s, optax.ScaleByAdamState)]
    return [int(s.count) for s in states]


def test_policy_phase_is_full_batch_and_value_phase_minibatched(setup):
    """The key only shuffles the value function's minibatches: the actor is the same under two
    keys (full-batch policy steps), the critic is not (shuffled minibatches)."""
    config, _, rule, params, _, update = setup
    a, _, _ = update(params, rule.init(params), jax.random.key(5))
    b, _, _ = update(params, rule.init(params), jax.random.key(6))
    np.testing.assert_array_equal(_flat(a.actor), _flat(b.actor))
    assert np.abs(_flat(a.critic) - _flat(b.critic)).max() > 0
    assert np.abs(_flat(a.actor) - _flat(params.actor)).max() > 0


def test_phases_do_not_see_each_others_parameters(setup):
    """The actor's update does not depend on the critic, nor the critic's on the actor (one
    loss over both would couple them through the global-norm clip)."""
    _, network, rule, params, _, update = setup
    other = network.init(jax.random.key(9))
    key = jax.random.key(5)
    base, _, _ = update(params, rule.init(params), key)
    swapped_critic = params.replace(critic=other.critic)
    swapped_actor = params.replace(actor=other.actor)
    np.testing.assert_array_equal(
        _flat(base.actor), _flat(update(swapped_critic, rule.init(swapped_critic), key)[0].actor))
    np.testing.assert_array_equal(
        _flat(base.critic), _flat(update(swapped_actor, rule.init(swapped_actor), key)[0].critic))


def test_each_phase_has_its_own_adam_and_step_count(setup):
    """Per update, the policy's Adam takes ``policy_steps`` steps and the value function's
    ``num_epochs × num_minibatches``, both over their own parameters only."""
    config, _, rule, params, _, update = setup
    state = rule.init(params)
    assert isinstance(state, mdpo.MDPOState)
    _, state, metrics = update(params, state, jax.random.key(5))
    assert _adam_counts(state.actor_adam) == [config.policy_steps]
    assert _adam_counts(state.critic_adam) == [config.num_epochs * config.num_minibatches]
    assert jax.tree.leaves(state.actor_adam)[-1].size == _flat(params.actor).size
    assert jax.tree.leaves(state.critic_adam)[-1].size == _flat(params.critic).size
    assert np.isfinite(float(metrics["value_loss"])) and float(metrics["value_loss"]) > 0


def test_one_policy_step_is_the_full_batch_policy_gradient(setup):
    """With plain SGD, one policy step moves the actor by ``lr·mean(∇log π(a|s)·Â)`` over the
    whole batch, Â standardised over the batch (the KL term has zero gradient at π_old)."""
    config, network, _, params, batch, _ = setup
    config = config.replace(policy_steps=1)
    lr = 0.1
    drift = lambda x: drifts.mdpo(x.kl, x.progress, num_updates=config.num_updates)  # noqa: E731
    flat, unravel = ravel_pytree(params.actor)
    actor, _, _ = mdpo.policy_phase(params.actor, optax.sgd(lr).init(flat), batch,
                                    network=network, optimizer=optax.sgd(lr), config=config,
                                    drift=drift, progress=0.5)
    advantage = (batch.advantage - batch.advantage.mean()) / batch.advantage.std()
    score = jax.grad(lambda f: jnp.mean(
        network.policy(unravel(f), batch.obs).log_prob(batch.action) * advantage))(flat)
    np.testing.assert_allclose(_flat(actor) - np.asarray(flat), lr * np.asarray(score),
                               rtol=1e-4, atol=1e-7)


def test_policy_phase_kl_is_new_to_old(setup):
    """Two SGD steps: the reported ``kl_new_old`` is the mean of the two pre-step KLs,
    ``(0 + KL(π₁ ‖ π₀))/2`` with π₁ the policy after the first step — not KL(π₀ ‖ π₁)."""
    config, network, _, params, batch, _ = setup
    drift = lambda x: drifts.mdpo(x.kl, x.progress, num_updates=config.num_updates)  # noqa: E731
    opt = optax.sgd(3.0)
    flat = ravel_pytree(params.actor)[0]

    def phase(steps):
        return mdpo.policy_phase(params.actor, opt.init(flat), batch, network=network,
                                 optimizer=opt, config=config.replace(policy_steps=steps),
                                 drift=drift, progress=0.0)

    first, _, _ = phase(1)
    _, _, metrics = phase(2)
    pi0, pi1 = network.policy(params.actor, batch.obs), network.policy(first, batch.obs)
    forward, reverse = float(jnp.mean(pi1.kl(pi0))), float(jnp.mean(pi0.kl(pi1)))
    assert forward > 1e-3
    np.testing.assert_allclose(2 * float(metrics["kl_new_old"]), forward, rtol=1e-4)
    assert abs(reverse - forward) > 0.01 * forward
    # the drift at k = 0 of K: KL / t_0, t_0 = 1 + 1/K
    np.testing.assert_allclose(float(metrics["drift"]),
                               float(metrics["kl_new_old"]) / (1 + 1 / config.num_updates),
                               rtol=1e-4)


def test_defaults_follow_the_authors_launcher():
    """run_mujoco.py: 2048-sample batches, 10 policy steps, 5 value epochs of 128 samples,
    Adam 3e-4 constant, no entropy bonus, the clipped value loss at 0.2; the short-budget
    presets change only the learning rate (Brax, Pendulum) and the policy steps (Pendulum)."""
    for env, learning_rate in (("CartPole-v1", 3e-4), ("brax/hopper", 3e-3)):
        config = pgjax.make_config("mdpo", env)
        assert config.batch_size == 2048 and config.minibatch_size == 128, env
        assert (config.policy_steps, config.num_epochs, config.learning_rate) == (
            10, 5, learning_rate)
        assert (config.anneal_lr, config.ent_coef, config.clip_value_loss,
                config.clip_epsilon) == (False, 0.0, True, 0.2)
    pendulum = pgjax.make_config("mdpo", "Pendulum-v1")
    assert (pendulum.minibatch_size, pendulum.policy_steps, pendulum.learning_rate) == (
        128, 15, 2e-3)
