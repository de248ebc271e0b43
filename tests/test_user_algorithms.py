"""A user's algorithm without editing pgjax: a drift with its own hyperparameter
(``pgjax.register_drift``) and an update rule of its own (``examples/adaptive_kl_ppo.py``)."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
import pgjax.engine as engine_module
from pgjax.algorithms import Algorithm
from pgjax.updates import DriftInputs, UpdateRule

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=2, total_timesteps=4 * 32 * 3)


def my_drift(ratio, advantage, my_eps):  # a drift may also ask for kl=, progress=
    return jnp.abs(advantage) * (ratio - 1) ** 2 / (2 * my_eps)


@pytest.fixture(scope="module")
def myspo():
    pgjax.register_drift("myspo", my_drift, defaults={"my_eps": 0.3})
    yield
    pgjax.ALGORITHMS.pop("myspo")


def test_registered_drift_takes_its_hyperparameter_as_a_validated_leaf(myspo):
    config = pgjax.make_config("myspo", "CartPole-v1", my_eps=0.25)
    assert config.my_eps == config.hparams.my_eps == 0.25
    assert 0.25 in jax.tree.leaves(config)  # a leaf: vmappable, a grid is one compile
    assert pgjax.make_config("myspo").my_eps == 0.3
    assert pgjax.make_config("myspo", my_eps="0.5").my_eps == 0.5  # as from --set
    for bad, message in ((dict(my_eps=float("nan")), "my_eps: nan is outside"),
                         (dict(max_kl=0.1), "max_kl is not a hyperparameter of myspo; its "
                                            "hyperparameters are: my_eps"),
                         (dict(my_epss=0.1), "did you mean my_eps")):
        with pytest.raises(ValueError, match=message):
            pgjax.make_config("myspo", **bad)


@pytest.mark.slow
def test_sweep_over_the_users_hyperparameter_is_one_group_one_compile(myspo, tmp_path,
                                                                       monkeypatch):
    traces = []
    real = engine_module.make_trainer
    monkeypatch.setattr(engine_module, "make_trainer", lambda c: traces.append(c) or real(c))
    result = pgjax.sweep({"algos": ["myspo"], "envs": ["CartPole-v1"], "seeds": 2,
                          "grid": {"my_eps": [0.1, 0.3]}, "set": TINY},
                         out=tmp_path / "sweeps" / "myspo", progress=False)
    (group,) = result.groups
    assert [c.my_eps for c in group.group.configs] == [0.1, 0.3]
    assert len(traces) == 2  # one init and one chunk program for the 4 runs
    drift = np.asarray(group.metrics["drift"])  # [config, seed, update]: ε changes the penalty
    assert drift.shape == (2, 2, 3) and not np.allclose(drift[0], drift[1])


def test_a_drift_gets_kl_and_progress_by_name():
    def kl_drift(ratio, advantage, kl, progress, coef=2.0):
        return coef * kl * (1.0 + progress) + 0.0 * ratio * advantage

    algorithm = pgjax.register_drift("kl_drift_test", kl_drift)
    try:
        assert algorithm.uses_kl and algorithm.hyperparameter_names == ("coef",)
        config = pgjax.make_config("kl_drift_test", coef=3.0)
        x = DriftInputs(ratio=jnp.ones(2), advantage=jnp.ones(2), kl=jnp.array([0.1, 0.2]),
                        progress=jnp.float32(0.5))
        np.testing.assert_allclose(algorithm.drift(config, x), [0.45, 0.9], rtol=1e-6)
    finally:
        pgjax.ALGORITHMS.pop("kl_drift_test")
    with pytest.raises(ValueError, match="defaults: width not an argument"):
        pgjax.register_drift("bad", my_drift, defaults={"my_eps": 0.1, "width": 1.0})
    with pytest.raises(ValueError, match="give each a default"):
        pgjax.register_drift("bad", my_drift)
    with pytest.raises(ValueError, match="one of pgjax's algorithms"):
        pgjax.register_drift("ppo", my_drift, defaults={"my_eps": 0.1})


def _load_example():
    spec = importlib.util.spec_from_file_location(
        "adaptive_kl_ppo", ROOT / "examples" / "adaptive_kl_ppo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_own_update_rule_registers_trains_and_reports_its_metric():
    example = _load_example()
    try:
        config = pgjax.make_config("adaptive_kl_ppo", "CartPole-v1", kl_target=0.002, **TINY)
        _, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(0))
        assert set(metrics) == set(pgjax.METRICS) | {"kl_beta"}
        kl, beta = np.asarray(metrics["kl_new_old"]), np.asarray(metrics["kl_beta"])
        previous = np.concatenate([[1.0], beta[:-1]])
        want = np.where(kl < 0.002 / 1.5, previous / 2,
                        np.where(kl > 1.5 * 0.002, previous * 2, previous))
        np.testing.assert_array_equal(beta, want.astype(np.float32))
    finally:
        pgjax.ALGORITHMS.pop(example.ADAPTIVE_KL_PPO.name)


def test_an_update_reporting_an_undeclared_metric_is_refused():
    def make_update(config, network):
        rule = pgjax.ALGORITHMS["ppo"].update_rule(config, network)

        def update(*args):
            params, state, metrics = rule.update(*args)
            return params, state, {**metrics, "surprise": jnp.float32(0.0)}

        return UpdateRule(rule.init, update)

    pgjax.register(Algorithm(name="undeclared_test", make_update=make_update))
    try:
        config = pgjax.make_config("undeclared_test", "CartPole-v1", **TINY)
        with pytest.raises(ValueError, match="reports surprise it did not declare"):
            jax.eval_shape(pgjax.make_train(config), jax.random.key(0))
    finally:
        pgjax.ALGORITHMS.pop("undeclared_test")
