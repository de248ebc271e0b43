"""Trained policies: make_policy / evaluate, and a saved-and-reloaded policy evaluates exactly
as the in-memory one."""

import jax
import numpy as np
import pytest

import pgjax
from pgjax.cli import main
from pgjax.networks import ActorCriticParams
from pgjax.policy import POLICY_FILE, evaluate, load_policies


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = pgjax.make_config("ppo", "Pendulum-v1", total_timesteps=8192, num_steps=64)
    return config, pgjax.train(config, seeds=2, out=out, num_chunks=2, progress=False), out


@pytest.mark.slow
def test_reloaded_policy_evaluates_like_the_in_memory_one(pendulum_run):
    config, result, out = pendulum_run
    assert config.normalize_observations  # the statistics must travel with the policy
    keys = jax.random.split(jax.random.key(3), 2)
    run = jax.jit(jax.vmap(lambda p, k: evaluate(config, p, k, 4)))
    in_memory = run(result.final_state, keys)
    reloaded = run(load_policies(out / POLICY_FILE, config, 2), keys)
    np.testing.assert_array_equal(np.asarray(in_memory), np.asarray(reloaded))
    assert np.isfinite(np.asarray(in_memory)).all() and in_memory.shape == (2, 4)


def test_normalised_policy_needs_its_statistics(pendulum_run):
    config, result, _ = pendulum_run
    params = jax.tree.map(lambda x: x[0], result.final_state.params)
    assert isinstance(params, ActorCriticParams)
    with pytest.raises(ValueError, match="obs_moments"):
        pgjax.make_policy(config, params)


def test_deterministic_actions_are_the_mode_and_inside_the_bounds(pendulum_run):
    config, result, _ = pendulum_run
    state = jax.tree.map(lambda x: x[0], result.final_state)
    act = jax.jit(pgjax.make_policy(config, state), static_argnames="deterministic")
    obs = np.array([0.5, -0.3, 2.0], np.float32)
    a1 = act(jax.random.key(0), obs, deterministic=True)
    a2 = act(jax.random.key(1), obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    samples = jax.vmap(lambda k: act(k, obs))(jax.random.split(jax.random.key(2), 256))
    assert float(samples.min()) >= -2.0 and float(samples.max()) <= 2.0


def test_eval_cli_reads_a_run_directory(pendulum_run, capsys, tmp_path):
    _, result, out = pendulum_run
    assert main(["eval", str(out), "--episodes", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 + 2 and "eval return" in lines[1]
    assert main(["eval", str(tmp_path)]) == 2
