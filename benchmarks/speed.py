"""pgjax PPO against rejax PPO on gymnax CartPole-v1, same settings, one script run.

Settings for both: 16 envs × 128 steps, 8 epochs × 8 minibatches, lr 5e-4 constant, tanh 64×64
actor and critic, γ 0.99, λ 0.95, ε 0.2, entropy 0.01, value 0.5, 524,288 steps per seed;
rejax evaluates once, at the end. Two cases:

* one seed: one compiled program each (`jax.jit(make_train(config))` vs `jax.jit(algo.train)`);
* ``--seeds`` seeds (default 4): each kit's own way — pgjax's runner (`pgjax.train`, seeds sharded
  over the local devices, one per CPU core), rejax's `jax.vmap(algo.train)` over keys.

Compile seconds are AOT lower+compile; train seconds exclude compile; medians over ``--repeats``.
The ceiling is a random-action rollout of the same env at the same num_envs.
Final return: pgjax — mean return of the training episodes that ended in the last 5% of
updates; rejax — mean return of its own 128-episode stochastic evaluation at the end.

    python benchmarks/speed.py [--seeds 4] [--repeats 3] [--algorithms] [--families]
                               [--only-algorithms] [--only-families] [--family-steps N]
                               [--family PREFIX]
                               [--checkpoints] [--memory] [--shapes]

``--shapes`` runs only the two-shape comparison with rejax (16 envs × 128 steps, 8 × 8
minibatches, and PureJaxRL's 4 × 128, 4 × 4, lr annealed) and each shape's fraction of the FLOP
ceiling (:mod:`shapes`).

``--memory`` measures only a recurrent (GRU) PPO update's cost per env step against the
feed-forward one (:func:`memory_cost`). ``--checkpoints`` measures only the cost of checkpointing: the runner's throughput on the same
settings with no checkpoints, with a checkpoint every 10 s (async, the default) and every 10 s
written synchronously, interleaved, medians over the repeats (the final checkpoint at the end of
a run counts in its time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pgjax

pgjax.use_host_devices()  # before the first JAX computation: one CPU device per core

import jax  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from rejax_peer import run_rejax_ppo  # noqa: E402

STEPS = 524_288
SETTINGS = dict(num_envs=16, num_steps=128, num_epochs=8, num_minibatches=8, learning_rate=5e-4,
                anneal_lr=False, total_timesteps=STEPS, actor_hidden=(64, 64),
                critic_hidden=(64, 64), gamma=0.99, gae_lambda=0.95, clip_epsilon=0.2,
                ent_coef=0.01, vf_coef=0.5)


def pgjax_single(seed: int) -> dict:
    from shapes import timed_make_train

    result = timed_make_train(pgjax.make_config("ppo", "CartPole-v1", **SETTINGS), seed)
    return {**result, "final_return": [result["final_return"]]}


def pgjax_seeds(seeds: int, seed: int) -> dict:
    config = pgjax.make_config("ppo", "CartPole-v1", **SETTINGS)
    result = pgjax.train(config, seeds=seeds, seed=seed, progress=False)
    s = result.summary
    return {"compile_seconds": s["compile_seconds"], "train_seconds": s["run_seconds"],
            "steps_per_second": s["steps_per_second"], "final_return": s["final_return"]}


def random_actions(space, key, num_envs):
    if isinstance(space, pgjax.envs.Discrete):
        return jax.random.randint(key, (num_envs,), 0, space.n)
    return jax.random.uniform(key, (num_envs, *space.shape), minval=space.low, maxval=space.high)


def env_only_steps_per_second(env_id: str = "CartPole-v1", num_envs: int = 16,
                              steps: int = STEPS, reset: bool = True, **env_kwargs) -> float:
    """Random-action rollout of ``env_id`` from fresh starts (the ceiling for training
    throughput); ``reset=False`` steps the env under pgjax's auto-reset without it (episodes
    that end are not restarted: Craftax's "no-reset stepping rate")."""
    env = pgjax.envs.make(env_id, **env_kwargs)
    if not reset:
        env = env.env if isinstance(env, pgjax.envs.AutoReset) else env
    n = steps // num_envs

    def rollout(key):
        state, obs = jax.vmap(env.reset)(jax.random.split(key, num_envs))

        def step(state, key):
            key_action, key_env = jax.random.split(key)
            action = random_actions(env.action_space, key_action, num_envs)
            state, obs, reward, *_ = jax.vmap(env.step)(jax.random.split(key_env, num_envs),
                                                        state, action)
            return state, reward.sum()

        return jax.lax.scan(step, state, jax.random.split(key, n))[1].sum()

    compiled = jax.jit(rollout).lower(jax.random.key(0)).compile()
    compiled(jax.random.key(0)).block_until_ready()
    times = []
    for i in range(3):
        start = time.perf_counter()
        compiled(jax.random.key(i)).block_until_ready()
        times.append(time.perf_counter() - start)
    return n * num_envs / statistics.median(times)


def env_families(steps: int, only: str | None = None) -> None:
    """Training throughput against the env-only ceiling (same number of envs) for one env of
    each family, one seed, pgjax defaults and presets: hopper on the generalized backend (the
    default) and on spring; Breakout with its CNN torso (the default) and with the MLP torso;
    Playground's CartpoleBalance; Craftax-Classic-Symbolic with its pooled reset (the
    default, one fresh world per 64 envs per step) at its preset's 64 envs and at the Craftax
    baseline's 1024, with its env-only rate without resets (and, at 64 envs, with a reset per
    env). ``only``: the cases whose env id starts with it."""
    print(f"\nenv families: pgjax PPO training vs env-only random rollout, {steps:,} steps")
    print(f"{'env':48} {'envs':>4} {'env-only steps/s':>17} {'train steps/s':>14} "
          f"{'train/env-only':>15}")
    craftax = "craftax/Craftax-Classic-Symbolic-v1"
    cases = [("brax/hopper", {}), ("brax/hopper", {"env_kwargs": {"backend": "spring"}}),
             ("Breakout-MinAtar", {}), ("Breakout-MinAtar", {"torso": "mlp"}),
             ("playground/CartpoleBalance", {}), (craftax, {}),
             (craftax, {"num_envs": 1024})]  # the Craftax baseline's number of envs
    for env_id, overrides in cases:
        if only and not env_id.startswith(only):
            continue
        config = pgjax.make_config("ppo", env_id, total_timesteps=steps, **overrides)
        env_kwargs = dict(config.env_kwargs)
        ceiling = env_only_steps_per_second(env_id, config.num_envs, steps, **env_kwargs)
        result = pgjax.train(config, seeds=1, progress=False, checkpoint=False)
        rate = result.summary["steps_per_second"]
        detail = {"brax": env_kwargs.get("backend", "generalized"), "craftax": "pooled reset",
                  "playground": "MJX jax"}.get(env_id.split("/")[0], f"{config.torso} torso")
        label = f"{env_id} ({detail})"
        print(f"{label:48} {config.num_envs:>4} {ceiling:>17,.0f} {rate:>14,.0f} "
              f"{rate / ceiling:>15.2f}")
        if env_id == craftax:
            # a reset per env per step runs at ~1k steps/s: 1/16 of the steps, 64 envs only
            others = [("no reset", {"reset": False}, 1)]
            if config.num_envs <= 64:
                others.append(("a reset per env", {"reset_ratio": None}, 16))
            for label, kwargs, share in others:
                other = env_only_steps_per_second(
                    env_id, config.num_envs, max(steps // share, 64 * config.num_envs),
                    **{**env_kwargs, **kwargs})
                print(f"{'  env only, ' + label:48} {config.num_envs:>4} {other:>17,.0f} "
                      f"{'':>14} {rate / other:>15.2f}")


def compiled_update(algo: str, overrides: dict, env: str = "CartPole-v1"):
    """A jitted ``update`` (rollout + GAE + the algorithm's update) and a warmed-up state."""
    from pgjax.trainer import make_trainer

    trainer = make_trainer(pgjax.make_config(algo, env, **overrides))
    update = jax.jit(trainer.update)
    state = update(trainer.init(jax.random.key(0)))[0]
    return update, jax.block_until_ready(state)


def algorithms_per_update(repeats: int = 30) -> None:
    """Each algorithm's time per update against PPO's, all on the same batch (16 × 128,
    8 epochs × 8 minibatches: for MDPO and TRPO the value function's steps, after 10 full-batch
    policy steps or one natural-gradient step); MDPO, TRPO and FixPO also at their own defaults
    (MDPO: 10 full-batch policy steps and 5 × 16 value-function Adam steps; TRPO: one
    natural-gradient step and 5 × 8 value-function Adam steps;
    FixPO: 10 epochs × 8 minibatches plus its fix-up steps). Every update is compiled first,
    then timed in interleaved rounds (one update of each per round), so that load changes on a
    shared machine hit every algorithm alike; medians over ``repeats`` rounds."""
    same = dict(num_envs=16, num_steps=128, num_epochs=8, num_minibatches=8)
    own = dict(num_envs=16, num_steps=128)
    full_fisher = dict(own, fisher_subsample=1)
    cases = [(a, same) for a in ("ppo", "spo", "dpo", "mdpo", "lpo", "talpo", "trpo", "fixpo")]
    cases += [(a, own) for a in ("mdpo", "trpo", "fixpo")]
    cases.append(("trpo", full_fisher))
    compiled = [compiled_update(algo, kw) for algo, kw in cases]
    seconds = interleaved_seconds(compiled, repeats)
    print(f"\ntime per update on CartPole (median of {repeats} interleaved rounds), against PPO "
          "on the same batch")
    for (algo, kw), sec in zip(cases, seconds):
        shape = ("8 epochs × 8 minibatches" if kw is same else "its default steps" if kw is own
                 else "Fisher on the full batch")
        print(f"{algo:6} {shape:26} {sec * 1e3:7.2f} ms  ×{sec / seconds[0]:.2f}")


def interleaved_seconds(compiled: list, repeats: int) -> list[float]:
    """Median seconds per update of each ``(update, state)``, timed in interleaved rounds."""
    states = [state for _, state in compiled]
    times = [[] for _ in compiled]
    for _ in range(repeats):
        for i, (update, _) in enumerate(compiled):
            start = time.perf_counter()
            states[i] = jax.block_until_ready(update(states[i])[0])
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def memory_cost(repeats: int = 20) -> None:
    """A recurrent (GRU) PPO update's cost per env step against the feed-forward one, on
    StatelessCartPole-v1 (16 envs × 128 steps, one seed): rollout, GAE and update. At the env's
    preset (GRU 64, 4 epochs × 4 minibatches of 4 env sequences), and at pgjax's defaults
    (GRU 128, 8 × 8, minibatches of 2 sequences); the feed-forward 64×64 policy on the same
    epochs and minibatches each time. Interleaved rounds, medians."""
    env = "StatelessCartPole-v1"
    default = dict(num_epochs=8, num_minibatches=8, memory_size=128)
    cases = [("feed-forward, preset 4×4", {}), ("GRU 64, preset 4×4", {"memory": "gru"}),
             ("feed-forward, 8×8", default), ("GRU 128, 8×8", {**default, "memory": "gru"})]
    compiled = [compiled_update("ppo", kw, env) for _, kw in cases]
    seconds = interleaved_seconds(compiled, repeats)
    steps = 16 * 128
    print(f"\nPPO update on {env} per env step (median of {repeats} interleaved rounds)")
    for i, ((label, _), sec) in enumerate(zip(cases, seconds)):
        ff = seconds[i - i % 2]
        print(f"{label:26} {sec * 1e6 / steps:8.2f} µs/step  ×{sec / ff:.1f} feed-forward")


def checkpoint_cost(seeds: int, repeats: int) -> None:
    """Runner throughput with and without checkpoints every 10 s (medians, one script run)."""
    import tempfile

    from pgjax.checkpoint import CheckpointOptions

    config = pgjax.make_config("ppo", "CartPole-v1", **SETTINGS)
    modes = {"no checkpoints": False,
             "every 10 s, async": CheckpointOptions(every_seconds=10.0),
             "every 10 s, sync": CheckpointOptions(every_seconds=10.0, async_save=False)}
    rates = {name: [] for name in modes}
    saves = {name: [] for name in modes}
    for r in range(repeats):
        order = list(modes)[r % len(modes):] + list(modes)[:r % len(modes)]
        for name in order:  # interleaved, order rotated: machine noise hits all alike
            options = modes[name]
            with tempfile.TemporaryDirectory() as out:
                result = pgjax.train(config, seeds=seeds, seed=r, out=out, progress=False,
                                     checkpoint=options)
            rates[name].append(result.summary["steps_per_second"])
            saves[name].append(result.summary["checkpoints_written"])
    base = statistics.median(rates["no checkpoints"])
    print(f"\ncheckpoint cost: PPO CartPole, {seeds} seeds × {STEPS:,} steps, runner, "
          f"medians of {repeats}")
    print(f"{'mode':20} {'steps/s':>10} {'vs none':>8}  checkpoints written per run")
    for name in modes:
        rate = statistics.median(rates[name])
        print(f"{name:20} {rate:>10,.0f} {rate / base:>8.3f}  {saves[name]}  "
              f"runs: {[round(x) for x in rates[name]]}")


def median_of(runs: list[dict]) -> dict:
    out = {k: statistics.median(r[k] for r in runs) for k in ("compile_seconds",
                                                               "train_seconds",
                                                               "steps_per_second")}
    out["final_return"] = [round(x, 1) for r in runs for x in r["final_return"]]
    return out


def report(title: str, ours: dict, peer: dict) -> None:
    print(f"\n{title}")
    print(f"{'':8} {'compile s':>10} {'train s':>9} {'steps/s':>10}  final return")
    for name, r in (("pgjax", ours), ("rejax", peer)):
        print(f"{name:8} {r['compile_seconds']:>10.2f} {r['train_seconds']:>9.2f} "
              f"{r['steps_per_second']:>10,.0f}  {r['final_return']}")
    print(f"pgjax/rejax: steps/s ×{ours['steps_per_second'] / peer['steps_per_second']:.2f}, "
          f"compile ×{ours['compile_seconds'] / peer['compile_seconds']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--algorithms", action="store_true",
                        help="also time one update of every algorithm against PPO's")
    parser.add_argument("--only-algorithms", action="store_true",
                        help="time one update of every algorithm against PPO's, nothing else")
    parser.add_argument("--families", action="store_true",
                        help="also measure one env of each family (brax, playground and craftax "
                             "extras)")
    parser.add_argument("--only-families", action="store_true",
                        help="measure only the env families (--families without the rest)")
    parser.add_argument("--family", default=None,
                        help="with --only-families: the cases whose env id starts with this "
                             "(e.g. craftax/)")
    parser.add_argument("--family-steps", type=int, default=262_144,
                        help="training steps per env-family case (default 262,144)")
    parser.add_argument("--memory", action="store_true",
                        help="only measure a recurrent update's cost per env step against "
                             "the feed-forward one")
    parser.add_argument("--checkpoints", action="store_true",
                        help="only measure the cost of checkpointing every 10 s")
    parser.add_argument("--shapes", action="store_true",
                        help="only compare with rejax at both shapes (16x128 and 4x128), with "
                             "the fraction of the FLOP ceiling for each")
    args = parser.parse_args()
    print(f"devices: {jax.devices()}; jax {jax.__version__}")
    if args.shapes:
        from shapes import compare_shapes, print_shapes

        print_shapes(compare_shapes(args.repeats))
        return
    if args.checkpoints:
        checkpoint_cost(args.seeds, args.repeats)
        return
    if args.memory:
        memory_cost()
        return
    if args.only_families:
        env_families(args.family_steps, args.family)
        return
    if args.only_algorithms:
        algorithms_per_update()
        return
    ceiling = env_only_steps_per_second()
    print(f"env-only random rollout, 16 envs: {ceiling:,.0f} steps/s (the ceiling)")
    single = {"pgjax": [], "rejax": []}
    multi = {"pgjax": [], "rejax": []}
    for r in range(args.repeats):  # interleaved, so machine noise hits both alike
        single["pgjax"].append(pgjax_single(r))
        single["rejax"].append(run_rejax_ppo(r, STEPS))
        multi["pgjax"].append(pgjax_seeds(args.seeds, r))
        multi["rejax"].append(run_rejax_ppo(r, STEPS, seeds=args.seeds))
    report("one seed, one program each (medians)", median_of(single["pgjax"]),
           median_of(single["rejax"]))
    report(f"{args.seeds} seeds, each kit's own multi-seed path (medians)",
           median_of(multi["pgjax"]), median_of(multi["rejax"]))
    if args.algorithms:
        algorithms_per_update()
    if args.families:
        env_families(args.family_steps)


if __name__ == "__main__":
    main()
