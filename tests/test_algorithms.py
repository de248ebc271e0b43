"""Every registered drift trains through the one mirror update; configs carry the drifts'
hyperparameters as leaves; bad drifts are refused when the config is built."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax import drifts
from pgjax.distributions import DiagGaussian
from pgjax.envs import Box
from pgjax.networks import make_actor_critic
from pgjax.updates import Batch, mirror_loss

TINY = dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=2, total_timesteps=4 * 32 * 5)
LEARNED = ("lpo", "talpo")


def tiny_config(algo, **overrides):
    return pgjax.make_config(algo, "CartPole-v1", **{**TINY, **overrides})


@pytest.fixture(scope="module")
def run():
    """``run(algo, **overrides)`` → (final state, metrics), compiled once per argument set."""
    return functools.cache(
        lambda algo, **kw: jax.jit(pgjax.make_train(tiny_config(algo, **kw)))(jax.random.key(3)))


@pytest.mark.parametrize("algo", ["spo", "dpo", "mdpo", "lpo", "talpo"])
def test_every_algorithm_trains_with_fixed_size_metrics(run, algo):
    _, metrics = run(algo)
    assert set(metrics) == set(pgjax.METRICS)
    for name in pgjax.METRICS:
        value = np.asarray(metrics[name])
        assert value.shape == (5,), name
        if name not in ("episodic_return", "episode_length", "kl_new_old"):
            assert np.isfinite(value).all(), name
    # KL(π‖π_old) is computed (and reported) only for drifts that read it.
    uses_kl = pgjax.ALGORITHMS[algo].uses_kl
    assert np.isfinite(np.asarray(metrics["kl_new_old"])).all() == uses_kl
    assert uses_kl or np.isnan(np.asarray(metrics["kl_new_old"])).all()
    for name in ("approx_kl", "drift", "ratio_deviation") + (("kl_new_old",) if uses_kl else ()):
        assert (np.asarray(metrics[name]) >= 0).all(), name
    # Steps past the first move the policy: |r − 1| (and the KL to π_old) are positive.
    assert float(metrics["ratio_deviation"].max()) > 0
    assert not uses_kl or float(metrics["kl_new_old"].max()) > 0


def test_mdpo_penalty_grows_as_one_over_t_k(run):
    """drift / KL = 1/t_k with t_k = 1 − (k − 1)/K in update k (k from 0, as the authors'
    ``iters_so_far``): the schedule reaches the drift."""
    _, metrics = run("mdpo")
    k = np.arange(5)
    np.testing.assert_allclose(np.asarray(metrics["drift"] / metrics["kl_new_old"]),
                               1.0 / (1.0 - (k - 1) / 5), rtol=1e-3)


def test_talpo_at_zero_parameters_trains_exactly_like_lpo(run):
    lpo_state, lpo_metrics = run("lpo")
    talpo_state, talpo_metrics = run("talpo")
    for a, b in zip(jax.tree.leaves(lpo_state.params), jax.tree.leaves(talpo_state.params)):
        np.testing.assert_array_equal(a, b)


def test_user_drift_trains_exactly_like_the_registered_one(run):
    state, metrics = run("spo")
    mirror_state, mirror_metrics = run("mirror", drift=drifts.spo)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(mirror_state.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(metrics["drift"], mirror_metrics["drift"])


@pytest.mark.slow
def test_learned_drift_parameters_are_vmappable_leaves():
    """Two TA-LPO drift networks (an evolution-strategy population of 2) train in one compile
    and train differently."""
    traces = []

    def train(config, key):
        traces.append(1)
        return pgjax.make_train(config)(key)

    configs = pgjax.stack_configs([
        tiny_config("talpo"),
        tiny_config("talpo", drift_params=drifts.init_talpo(jax.random.key(0), scale=2.0),
                    learning_rate=1e-3),
    ])
    assert configs.drift_params.w_hidden.shape == (2, 16, 128)
    keys = jnp.stack([jax.random.key(0)] * 2)
    _, metrics = jax.jit(jax.vmap(train))(configs, keys)
    assert len(traces) == 1
    assert float(metrics["drift"][0].max()) < float(metrics["drift"][1].max())


def test_drift_params_load_from_a_file(tmp_path):
    params = drifts.init_lpo(jax.random.key(5))
    drifts.save_params(tmp_path / "lpo.npz", params)
    config = pgjax.make_config("lpo", "CartPole-v1", drift_params=str(tmp_path / "lpo.npz"))
    np.testing.assert_array_equal(config.drift_params.w_hidden, params.w_hidden)
    assert np.asarray(config.to_dict()["drift_params"]["w_out"]).shape == (128,)
    assert float(jnp.abs(pgjax.make_config("lpo").drift_params.w_hidden).max()) == 0.0


@pytest.mark.parametrize("algo, overrides, needle", [
    ("mirror", dict(drift=lambda r, a: jnp.sum(r * a)), "returns shape ()"),
    ("mirror", dict(drift=lambda r, a: (r * a)[:, None]), "returns shape (3, 1)"),
    ("mirror", dict(drift=lambda r, a: r @ jnp.ones((2, 2))), "fails on ratio"),
    ("mirror", {}, "needs drift=fn"),
    ("ppo", dict(drift=drifts.spo), "only algo 'mirror'"),
    ("lpo", dict(drift_params=drifts.init_talpo()), "fails on ratio"),
    ("dpo", dict(dpo_beta=0.0), "outside the allowed range"),
    ("spo", dict(drift_params=drifts.init_lpo()), "no learned drift"),
    # a hyperparameter of another algorithm is refused, not ignored
    ("mirror", dict(drift=drifts.dpo, dpo_alpha=1.5), "not a hyperparameter of mirror"),
    ("ppo", dict(max_kl=0.02), "max_kl is not a hyperparameter of ppo; its hyperparameters "
                               "are: none"),
])
def test_bad_drift_is_refused_when_the_config_is_built(algo, overrides, needle):
    field = next((k for k in overrides if k in needle or k != "drift"), "drift")
    with pytest.raises(ValueError) as error:
        pgjax.make_config(algo, "CartPole-v1", **overrides)
    message = str(error.value)
    assert message.startswith(field) and needle in message and "\n" not in message


def test_drift_fields_round_trip_through_the_run_summary():
    """``pgjax eval DIR`` rebuilds the config from summary.json: drift and drift_params too."""
    import json

    from pgjax.config import config_from_dict

    for config in (pgjax.make_config("talpo", drift_params=drifts.init_talpo(jax.random.key(1))),
                   pgjax.make_config("mirror", drift=drifts.dpo),
                   pgjax.make_config("dpo", dpo_alpha=1.5)):
        again = config_from_dict(json.loads(json.dumps(config.to_dict())))
        assert again.drift is config.drift and again.hparams == config.hparams
        for a, b in zip(jax.tree.leaves(again.drift_params), jax.tree.leaves(config.drift_params)):
            np.testing.assert_array_equal(a, b)


def test_user_drift_with_parameters_is_called_with_them_first():
    def scaled_spo(params, ratio, advantage):
        return params["scale"] * drifts.spo(ratio, advantage)

    config = pgjax.make_config("mirror", "CartPole-v1", drift=scaled_spo,
                               drift_params={"scale": jnp.float32(2.0)})
    assert config.to_dict()["drift"].endswith("scaled_spo")
    with pytest.raises(ValueError, match="^drift: cannot import"):
        pgjax.make_config("mirror", "CartPole-v1", drift="pgjax.drifts:nope")
    assert pgjax.make_config("mirror", "CartPole-v1", drift="pgjax.drifts:dpo").drift is drifts.dpo


@pytest.mark.slow
def test_kl_new_old_is_the_analytic_kl_of_the_new_policy_to_the_old():
    """The update's KL(π ‖ π_old) against a Monte Carlo estimate under π; the reverse direction
    KL(π_old ‖ π) differs by more than the tolerance, so the direction is checked too."""
    network = make_actor_critic(Box.make(-1.0, 1.0, (3,)), Box.make(-1.0, 1.0, (2,)), (16,), (16,))
    old = network.init(jax.random.key(0))
    new = old.replace(actor={"mlp": jax.tree.map(lambda w: w + 0.3, old.actor["mlp"]),
                             "log_std": jnp.array([0.6, -0.4])})
    obs = jax.random.normal(jax.random.key(1), (32, 3))
    pi, pi_old = network.policy(new.actor, obs), network.policy(old.actor, obs)
    pi_old = DiagGaussian(pi_old.mean, jnp.broadcast_to(pi_old.log_std, pi_old.mean.shape))
    zeros = jnp.zeros(32)
    batch = Batch(obs, zeros[:, None].repeat(2, 1), zeros, zeros, zeros, zeros, pi_old)
    config = tiny_config("mdpo")
    _, (metrics, samples) = mirror_loss(new, batch, network=network, config=config,
                                        progress=0.0,
                                        drift=lambda x: drifts.mdpo(x.kl, x.progress,
                                                                    num_updates=4))
    actions = jax.vmap(pi.sample)(jax.random.split(jax.random.key(2), 40_000))  # [S, 32, 2]
    mc = float(jnp.mean(pi.log_prob(actions) - pi_old.log_prob(actions)))
    reverse = float(jnp.mean(pi_old.kl(pi)))
    assert abs(float(metrics["kl_new_old"]) - mc) < 0.02 * mc
    assert abs(reverse - mc) > 0.1 * mc
    # MDPO's drift at k = 0 of K = 4: KL / t_0 with t_0 = 1 + 1/K
    np.testing.assert_allclose(jnp.mean(samples["drift"]), metrics["kl_new_old"] / 1.25,
                               rtol=1e-6)


def test_cli_refuses_bad_drift_settings_in_one_line(capsys, tmp_path):
    from pgjax.cli import main

    (tmp_path / "empty.npz").write_bytes(b"")
    for sets in (["drift_params=" + str(tmp_path / "empty.npz")], ["drift=pgjax.drifts:nope"],
                 ["drift=pgjax.drifts:spo"], ["dpo_alpha=-1"]):
        assert main(["train", "lpo", "CartPole-v1", "--set", *sets]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pgjax: error: d") and "\n" not in err


def test_cli_lists_every_algorithm(capsys):
    from pgjax.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for algo in ("ppo", "spo", "dpo", "mdpo", "lpo", "talpo", "mirror"):
        assert f"  {algo} " in out
    assert "hyperparameters: max_kl=0.01, cg_damping=0.1" in out
