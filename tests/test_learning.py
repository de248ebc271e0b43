"""Every algorithm learns: on CartPole at the README's budget (500k steps), seeds 0–3, 3 of 4
over the bar (a single run's final return — its last 5% of updates — can catch a dip: LPO's
seed 0 ended at 415 after 500 from 150k steps on, on one machine's numerics); on Pendulum at
the benchmark suite's CPU budget (524,288 steps: every seed 0–3 of these four algorithms ended
between −138 and −161 there, benchmarks/README.md), seeds 0 and 1 (one per host device of a
2-core CPU), both over the bar (5-10 s per CartPole run, about 5 s per Pendulum run there). The
4-seed figures, with intervals, are in benchmarks/README.md. TRPO's and FixPO's Pendulum runs
(2M steps, a few minutes each) would push the suite past its 15-minute budget; their figures
are in benchmarks/README.md.

MDPO is tested on CartPole only: on Pendulum at 524,288 steps its last updates can undo what it
learned (its KL weight ``1/t_k`` grows to K/2 there; the entropy falls, the gradient norm
grows): of seeds 0–7, one ended below −250 compiled at LLVM -O2 (−255) and two at -O1 (−376
and −1,073, both near −190 at mid-run), the rest between −150 and −177. Which seeds fall
depends on the last bits of the arithmetic, so no fixed pair of seeds is a stable test.

TA-LPO is left out: with its default zero drift parameters it trains bit-for-bit like LPO
(tests/test_algorithms.py checks that), so it would repeat LPO's runs.
"""

import numpy as np
import pytest

import pgjax

CASES = [(algo, "CartPole-v1", 500_000, 475.0)
         for algo in ("ppo", "spo", "dpo", "mdpo", "lpo")]
CASES += [(algo, "Pendulum-v1", 524_288, -250.0) for algo in ("ppo", "spo", "dpo", "lpo")]
# The trust-region updates, with the trust region checked on every update.
CASES += [(algo, "CartPole-v1", 500_000, 475.0) for algo in ("trpo", "fixpo")]


@pytest.mark.slow
@pytest.mark.learning
@pytest.mark.parametrize("algo, env, steps, threshold", CASES)
def test_algorithm_learns(algo, env, steps, threshold):
    config = pgjax.make_config(algo, env, total_timesteps=steps)
    seeds, over = (4, 3) if env == "CartPole-v1" else (2, 2)
    result = pgjax.train(config, seeds=seeds, progress=False)
    final = np.asarray(result.summary["final_return"])
    assert (final >= threshold).sum() >= over, final
    if "kl_bound_held" in result.metrics:  # TRPO, FixPO: inside the trust region every update
        assert (result.metrics["kl_bound_held"] == 1).all()
