"""TRPO: conjugate gradient, the Fisher-vector product, the line search's rejections, and the
KL bound on every update of a CartPole run."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import pgjax
from pgjax.algorithms import trpo
from pgjax.envs import Box, Discrete
from pgjax.networks import make_actor_critic
from pgjax.updates import Batch

TINY = dict(num_envs=4, num_steps=64, num_epochs=2, num_minibatches=2,
            total_timesteps=4 * 64 * 12)


def test_conjugate_gradient_matches_a_dense_solve():
    m = jax.random.normal(jax.random.key(0), (8, 8))
    a = m @ m.T + 0.5 * jnp.eye(8)
    b = jax.random.normal(jax.random.key(1), (8,))
    x, residual = jax.jit(lambda b: trpo.conjugate_gradient(lambda v: a @ v, b, 30))(b)
    np.testing.assert_allclose(x, np.linalg.solve(np.asarray(a, np.float64), b), rtol=1e-3,
                               atol=1e-4)
    assert float(residual) < 1e-3
    # Fewer iterations than the dimension: an approximation, and the residual says so.
    _, early = trpo.conjugate_gradient(lambda v: a @ v, b, 2)
    assert float(early) > 1e-2
    # b = 0: x = 0, residual 0, no NaN.
    x0, r0 = trpo.conjugate_gradient(lambda v: a @ v, jnp.zeros(8), 5)
    assert not np.any(x0) and float(r0) == 0.0


def _tiny_actor(discrete):
    action_space = Discrete(3) if discrete else Box(-1.0, 1.0, (2,))
    network = make_actor_critic(Box(-1.0, 1.0, (3,)), action_space, (5,), (4,))
    params = network.init(jax.random.key(2)).actor
    if not discrete:
        params = {**params, "log_std": jnp.array([-0.3, 0.2])}
    obs = jax.random.normal(jax.random.key(3), (12, 3))
    return network, params, obs


@pytest.mark.parametrize("discrete", [True, False])
def test_fisher_vector_product_is_the_hessian_of_the_kl(discrete):
    network, params, obs = _tiny_actor(discrete)
    flat, unravel = ravel_pytree(params)
    old = network.policy(params, obs)

    def policy_of(theta):
        return network.policy(unravel(theta), obs)

    def mean_kl(theta):
        return old.kl(policy_of(theta)).mean()

    hessian = jax.jit(jax.hessian(mean_kl))(flat)
    fvp = jax.jit(jax.vmap(lambda v: trpo.fisher_vector_product(
        lambda p: old.kl(p).mean(), policy_of, flat, damping=0.1)(v)))
    vs = jax.random.normal(jax.random.key(10), (3,) + flat.shape)
    np.testing.assert_allclose(fvp(vs), vs @ hessian.T + 0.1 * vs, rtol=1e-3, atol=1e-5)
    if discrete:  # at θ_old the KL's Hessian is the Fisher matrix E_s Σ_a π ∇log π ∇log πᵀ
        jac = jax.jit(jax.jacobian(lambda t: network.policy(unravel(t), obs).log_probs))(flat)
        probs = jnp.exp(old.log_probs)
        fisher = jnp.einsum("sa,sap,saq->pq", probs, jac, jac) / obs.shape[0]
        np.testing.assert_allclose(hessian, fisher, atol=1e-5)
        assert float(jnp.abs(fisher).max()) > 1e-3


def _batch(network, params, key, advantage_scale=1.0):
    obs = jax.random.normal(key, (64, 3))
    policy = network.policy(params, obs)
    action = policy.sample(jax.random.key(5))
    advantage = advantage_scale * jax.random.normal(jax.random.key(6), (64,))
    zeros = jnp.zeros(64)
    return Batch(obs, action, policy.log_prob(action), zeros, advantage, zeros)


def _policy_step(params, batch, network, **overrides):
    config = pgjax.make_config("trpo", "CartPole-v1", **overrides)
    return jax.jit(functools.partial(trpo.policy_step, network=network, config=config))(
        params, batch)


def test_policy_step_reports_the_true_post_update_kl():
    network, params, _ = _tiny_actor(True)
    batch = _batch(network, params, jax.random.key(4))
    new, metrics = _policy_step(params, batch, network, max_kl=0.02)
    kl = network.policy(params, batch.obs).kl(network.policy(new, batch.obs)).mean()
    assert float(metrics["step_accepted"]) == 1.0
    np.testing.assert_allclose(metrics["kl"], kl, rtol=1e-4)
    assert 0 < float(kl) <= 1.5 * 0.02
    assert float(metrics["surrogate_improvement"]) > 0


@pytest.mark.parametrize("case", ["no_improvement", "absurd_step"])
def test_failed_line_search_keeps_the_parameters(case):
    network, params, _ = _tiny_actor(True)
    if case == "no_improvement":  # Â = 0: no step can improve the surrogate
        batch = _batch(network, params, jax.random.key(4), advantage_scale=0.0)
        overrides = {}
    else:  # a step aimed at KL 1000 against an acceptance bound of 1e-6: no backtrack fits
        batch = _batch(network, params, jax.random.key(4))
        overrides = dict(max_kl=1000.0, accept_kl_ratio=1e-9, max_backtracks=4)
    new, metrics = _policy_step(params, batch, network, **overrides)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert float(metrics["step_accepted"]) == 0.0
    assert float(metrics["kl"]) == 0.0 and float(metrics["surrogate_improvement"]) == 0.0
    assert int(metrics["line_search_steps"]) == overrides.get("max_backtracks", 10)


def test_line_search_rejects_non_finite_candidates():
    def f(t):
        return jnp.where(jnp.abs(t[0]) > 1, jnp.nan, t[0]), 0.0 * t[0]

    old = jnp.zeros(1)
    new, accepted, trials = trpo.backtracking_line_search(
        f, old, jnp.array([8.0]), 0.0, kl_bound=1.0, backtrack_coef=0.5, max_backtracks=6)
    assert bool(accepted) and float(new[0]) == 1.0 and int(trials) == 4  # 8, 4, 2 are NaN


@pytest.fixture(scope="module")
def cartpole_run():
    config = pgjax.make_config("trpo", "CartPole-v1", **TINY)
    return config, jax.jit(pgjax.make_train(config))(jax.random.key(1))


def test_kl_bound_holds_on_every_update_of_a_cartpole_run(cartpole_run):
    config, (_, metrics) = cartpole_run
    assert set(metrics) == set(pgjax.METRICS + trpo.METRICS)
    kl = np.asarray(metrics["kl"])
    assert kl.shape == (config.num_updates,)
    assert (kl <= config.accept_kl_ratio * config.max_kl).all(), kl
    assert (np.asarray(metrics["kl_bound_held"]) == 1).all()
    accepted = np.asarray(metrics["step_accepted"]) == 1
    assert accepted.mean() >= 0.5
    assert (kl[accepted] > 0).all() and (kl[~accepted] == 0).all()
    assert (np.asarray(metrics["surrogate_improvement"])[accepted] > 0).all()
    assert np.isnan(np.asarray(metrics["kl_new_old"])).all()
    assert np.isfinite(np.asarray(metrics["value_loss"])).all()


@pytest.mark.slow
def test_vmap_over_the_kl_radius():
    configs = [pgjax.make_config("trpo", "CartPole-v1", **{**TINY, "total_timesteps": 4 * 64 * 3},
                                 max_kl=d) for d in (0.001, 0.05)]
    keys = jax.random.split(jax.random.key(0), 2)
    _, metrics = jax.jit(jax.vmap(lambda c, k: pgjax.make_train(c)(k)))(
        pgjax.stack_configs(configs), keys)
    kl = np.asarray(metrics["kl"])
    assert (kl[0] <= 1.5 * 0.001).all() and (kl[1] <= 1.5 * 0.05).all()
    assert kl[1].max() > 5 * kl[0].max()


def test_trpo_fields_are_validated():
    with pytest.raises(ValueError, match="max_kl: -0.1 is outside"):
        pgjax.make_config("trpo", "CartPole-v1", max_kl=-0.1)
    with pytest.raises(ValueError, match="backtrack_coef: 1 is outside"):
        pgjax.make_config("trpo", "CartPole-v1", backtrack_coef=1.0)
    with pytest.raises(ValueError, match="cg_iters: 0 must be a positive integer"):
        pgjax.make_config("trpo", "CartPole-v1", cg_iters=0)


@pytest.mark.slow
def test_runner_writes_the_trpo_columns_and_the_bound_share(tmp_path):
    import csv
    import json

    config = pgjax.make_config("trpo", "CartPole-v1", **{**TINY, "total_timesteps": 4 * 64 * 2})
    pgjax.train(config, seeds=2, out=tmp_path, num_chunks=1, progress=False)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[2:] == list(pgjax.METRICS + trpo.METRICS)
    assert len(rows) == 4 and all(float(r["kl"]) <= 0.015 for r in rows)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["kl_bound_held"] == [1.0, 1.0]
