"""Numerical faults: a NaN reward at a chosen env step stops the run naming that update, the
quantity and the seed, keeping the last finite checkpoint; ``skip_nonfinite`` skips the update
and counts it instead."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import pgjax
import pgjax.cli
from pgjax.checkpoint import CheckpointOptions, Checkpointer
from pgjax.engine import CHECKPOINT_DIR
from pgjax.faults import NumericalFault

NUM_ENVS, NUM_STEPS = 4, 32
TINY = dict(num_envs=NUM_ENVS, num_steps=NUM_STEPS, num_epochs=2, num_minibatches=4,
            total_timesteps=NUM_ENVS * NUM_STEPS * 6)
NAN_STEP = 2 * NUM_STEPS + 5  #: each env's 70th step: in the rollout of update 3


@struct.dataclass
class CountState:
    inner: object
    t: jax.Array


class NaNRewardAt(pgjax.envs.Wrapper):
    """The wrapped env, except that the reward of each env's ``step``-th step is NaN."""

    def __init__(self, env, step):
        super().__init__(env)
        self.nan_step = step
        self.name = f"nan-reward-at-{step}"

    def reset(self, key):
        state, obs = self.env.reset(key)
        return CountState(state, jnp.zeros((), jnp.int32)), obs

    def step(self, key, state, action):
        inner, obs, reward, terminated, truncated, info = self.env.step(key, state.inner, action)
        t = state.t + 1
        reward = jnp.where(t == self.nan_step, jnp.nan, reward)
        return CountState(inner, t), obs, reward, terminated, truncated, info


def nan_env():
    return NaNRewardAt(pgjax.envs.make("CartPole-v1"), NAN_STEP)


@pytest.fixture(scope="module", autouse=True)
def registered():
    pgjax.envs.register("test/NaNCartPole", lambda: nan_env())


@pytest.mark.slow
def test_nan_reward_stops_the_run_naming_the_update(tmp_path):
    config = pgjax.make_config("ppo", nan_env(), **TINY)
    with pytest.raises(NumericalFault) as error:
        pgjax.train(config, seeds=2, out=tmp_path, progress=False,
                    checkpoint=CheckpointOptions(every_seconds=None, every_updates=1))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("numerical fault: reward is NaN or infinite at update 3 "
                              "(seed index 0, --seed 0); training stopped, last finite "
                              "checkpoint: update 2 in ")
    assert Checkpointer(tmp_path / CHECKPOINT_DIR).steps() == [1, 2]  # nothing after the fault


def test_cli_prints_the_fault_in_one_line(tmp_path, capsys):
    sets = [f"{k}={v}" for k, v in TINY.items()]
    code = pgjax.cli.main(["train", "ppo", "test/NaNCartPole", "--out", str(tmp_path),
                           "--quiet", "--seed", "5", "--set", *sets])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert err[-1].startswith("pgjax: numerical fault: reward is NaN or infinite at update 3 "
                              "(seed index 0, --seed 5); training stopped, no checkpoint"), err


@pytest.mark.slow
def test_skip_nonfinite_skips_and_counts():
    config = pgjax.make_config("ppo", nan_env(), skip_nonfinite=True, **TINY)
    state, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(0))
    np.testing.assert_array_equal(metrics["nonfinite"], [0, 0, 1, 0, 0, 0])  # 1: "reward"
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(state.params))
    assert np.isfinite(metrics["policy_loss"][3:]).all()  # training went on
    # Without the option the same NaN spreads into the parameters.
    state, metrics = jax.jit(pgjax.make_train(config.replace(skip_nonfinite=False)))(
        jax.random.key(0))
    assert metrics["nonfinite"][2] == 1 and metrics["nonfinite"][3] > 0
    assert not all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(state.params))


def test_fault_codes_name_the_first_nonfinite_quantity():
    from pgjax.faults import FAULT_CHECKS, first_nonfinite

    fine = {"reward": jnp.ones(3), "params": {"w": jnp.ones(2)}, "grad_norm": jnp.float32(1)}
    assert int(first_nonfinite(fine)) == 0
    bad = {**fine, "params": {"w": jnp.array([1.0, jnp.inf])}}
    assert FAULT_CHECKS[int(first_nonfinite(bad)) - 1] == "params"
    worse = {**bad, "grad_norm": jnp.float32(jnp.nan)}
    assert FAULT_CHECKS[int(first_nonfinite(worse)) - 1] == "grad_norm"


@pytest.mark.slow
def test_a_sweep_stops_at_a_fault_naming_the_run(tmp_path):
    spec = {"algos": ["ppo"], "envs": ["test/NaNCartPole"], "seeds": 2, "num_chunks": 6,
            "grid": {"learning_rate": [5e-4, 1e-3]}, "set": TINY}
    with pytest.raises(NumericalFault) as error:
        pgjax.sweep(spec, out=tmp_path / "sweep", progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("numerical fault: reward is NaN or infinite at update 3 of group ")
    assert "(ppo on test/NaNCartPole, learning_rate=0.0005, seed 0); the sweep stopped" in message
    assert not list((tmp_path / "sweep").glob("groups/*/group.json"))  # not marked done
