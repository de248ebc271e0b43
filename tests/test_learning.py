"""PPO learns: the budgets of the README's main job, 4 seeds each (minutes on 2 CPU cores)."""

import numpy as np
import pytest

import pgjax


@pytest.mark.slow
@pytest.mark.parametrize("env, steps, threshold", [
    ("CartPole-v1", 500_000, 475.0),
    ("Pendulum-v1", 1_000_000, -250.0),
])
def test_ppo_learns(env, steps, threshold):
    config = pgjax.make_config("ppo", env, total_timesteps=steps)
    result = pgjax.train(config, seeds=4, progress=False)
    final = np.asarray(result.summary["final_return"])
    assert (final >= threshold).sum() >= 3, final
