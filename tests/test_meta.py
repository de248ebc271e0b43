"""pgjax.meta: the evolution strategy improves a known fitness, one generation's program equals
its members run one at a time, a resumed run continues the same ES trajectory, and the CLI."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import drifts, meta
from pgjax.cli import main
from pgjax.trainer import make_train

TINY = {"total_timesteps": 4096, "num_envs": 4, "num_steps": 64, "num_minibatches": 2,
        "num_epochs": 2}


def _target():
    return drifts.init_lpo(jax.random.key(7), scale=0.05)


def _quadratic(members, keys):
    """A known fitness: −‖φ − φ*‖² per member (the same for every inner seed)."""
    target = _target()
    distance = sum(jnp.sum(jnp.square(m - t), axis=tuple(range(1, m.ndim)))
                   for m, t in zip(jax.tree.leaves(members), jax.tree.leaves(target)))
    return jnp.broadcast_to(-distance[:, None], (distance.shape[0], keys.shape[0]))


# 1,152 parameters: a large population and small steps for a clean descent in 60 generations
QUADRATIC = meta.MetaSpec(algo="lpo", generations=60, population_size=128, inner_seeds=1,
                          learning_rate=0.002, sigma=0.01, set=TINY)


def test_es_improves_a_known_fitness():
    result = meta.meta_train(QUADRATIC, progress=False, fitness_fn=_quadratic)
    fitness = result.history["mean_fitness"]
    assert fitness[-1] > 0.6 * fitness[0]  # −‖φ − φ*‖²: the squared gap shrank by > 40%
    assert np.all(np.diff(fitness[::15]) > 0)


@pytest.mark.slow
def test_resume_continues_the_same_trajectory(tmp_path):
    short = dataclasses.replace(QUADRATIC, generations=3, population_size=8)
    whole = meta.meta_train(dataclasses.replace(short, generations=5), tmp_path / "whole",
                            progress=False, fitness_fn=_quadratic)
    meta.meta_train(short, tmp_path / "cut", progress=False, fitness_fn=_quadratic)
    resumed = meta.meta_train(dataclasses.replace(short, generations=5), tmp_path / "cut",
                              progress=False, fitness_fn=_quadratic)
    for a, b in zip(jax.tree.leaves(whole.mean_params), jax.tree.leaves(resumed.mean_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name in meta.HISTORY:
        np.testing.assert_array_equal(whole.history[name], resumed.history[name])


def test_resume_refuses_a_different_spec(tmp_path):
    short = dataclasses.replace(QUADRATIC, generations=1, population_size=8)
    meta.meta_train(short, tmp_path, progress=False, fitness_fn=_quadratic)
    with pytest.raises(ValueError, match="sigma"):
        meta.meta_train(dataclasses.replace(short, sigma=0.5), tmp_path, progress=False,
                        fitness_fn=_quadratic)


@pytest.mark.slow
def test_one_generation_equals_its_members_one_at_a_time():
    # a large step size, so that the drift (which only acts once r ≠ 1) changes the episodes
    spec = meta.MetaSpec(algo="lpo", population_size=4, inner_seeds=2,
                         set={**TINY, "learning_rate": 0.02})
    config = spec.configs()[0]
    updates = meta._fitness_updates(spec, config)
    # not −x: the LPO net is even in its parameters ((−w₂)ᵀ tanh(−W₁x) = w₂ᵀ tanh(W₁x), tanh
    # being odd), so x and −x are the same drift
    members = jax.tree.map(lambda x: jnp.stack([x * 0, x, 2 * x]),
                           drifts.init_lpo(jax.random.key(1), scale=2.0))
    keys = jax.random.split(jax.random.key(3), 2)
    together = np.asarray(meta.make_evaluate(config, 2, updates)(members, keys))

    @jax.jit
    def one(params, key):
        _, metrics = make_train(config.replace(drift_params=params))(key)
        return meta.final_return(metrics, updates)

    alone = np.array([[float(one(jax.tree.map(lambda x, m=m: x[m], members), keys[s]))
                       for s in range(2)] for m in range(3)])
    assert together.shape == (3, 2)
    np.testing.assert_allclose(together, alone, rtol=1e-4)
    assert not np.allclose(together[1], together[2])  # members really differ


def test_spec_errors():
    with pytest.raises(ValueError, match="population_size: 3 must be even"):
        meta.MetaSpec(population_size=3)
    with pytest.raises(ValueError, match="normalize"):
        meta.MetaSpec(envs=("CartPole-v1", "Acrobot-v1"))
    with pytest.raises(ValueError, match="no drift parameters"):
        meta.MetaSpec(algo="ppo").configs()
    with pytest.raises(ValueError, match="not an evosax distribution-based"):
        meta.make_strategy(meta.MetaSpec(strategy="NoSuchES"), drifts.init_lpo())


@pytest.mark.slow
def test_cli_meta_and_resume(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["meta", "lpo", "CartPole-v1", "--generations", "1", "--population", "2",
            "--inner-seeds", "1", "--total-timesteps", "2048", "--quiet", "--out", out,
            "--set", "num_envs=4", "num_steps=64", "num_minibatches=2", "num_epochs=1"]
    assert main(args) == 0
    for name in ("mean.npz", "fitness.csv", "fitness.png", "meta.json"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert drifts.load_params(tmp_path / "run" / "mean.npz").w_hidden.shape == (8, 128)
    assert main(["resume", out, "--quiet"]) == 0
    assert "ES mean fitness" in capsys.readouterr().out
    assert main(["meta", "lpo", "CartPole-v1", "--population", "3"]) == 2


@pytest.mark.slow
def test_shipped_drifts_are_valid_and_train_cartpole():
    import pgjax
    from pgjax.engine import final_returns

    names = drifts.shipped()
    assert names, "pgjax ships at least one learned drift"
    ratio = jnp.linspace(0.2, 3.0, 57)[:, None]
    advantage = jnp.linspace(-3.0, 3.0, 13)[None, :]
    for name in names:
        params = drifts.load(name)
        kind = drifts.talpo if params.w_hidden.shape[0] == drifts.TALPO_FEATURES else drifts.lpo
        for progress in ((0.0, 0.5, 1.0) if kind is drifts.talpo else (None,)):
            args = () if progress is None else (progress,)

            def drift(r, a, args=args, kind=kind, params=params):
                return kind(params, r, a, *args)

            assert float(drift(ratio, advantage).min()) >= 0.0
            at_one = drift(jnp.ones(13), advantage[0])
            slope = jax.vmap(jax.grad(drift))(jnp.ones(13), advantage[0])
            np.testing.assert_array_equal(np.asarray(at_one), 0.0)
            np.testing.assert_array_equal(np.asarray(slope), 0.0)
        config = pgjax.make_config(name, "CartPole-v1", total_timesteps=65_536)
        keys = jax.random.split(jax.random.key(0), 2)
        _, metrics = jax.jit(jax.vmap(pgjax.make_train(config)))(keys)
        returns = final_returns({k: np.asarray(v) for k, v in metrics.items()})
        assert np.mean(returns) > 150.0, (name, returns)  # a random policy scores ~22


def test_importing_pgjax_with_shipped_drifts_starts_no_xla_backend():
    """Registering the shipped drifts reads them with numpy: ``jax.distributed.initialize``
    must still be possible after ``import pgjax`` (multi-process sweeps)."""
    import subprocess
    import sys

    code = ("import pgjax\nfrom jax._src import xla_bridge\n"
            "assert 'lpo_cartpole' in pgjax.ALGORITHMS\nassert not xla_bridge._backends")
    subprocess.run([sys.executable, "-c", code], check=True)
