"""pgjax PPO against rejax 0.1.3 PPO at two batch shapes in one process, with each shape's
fraction of a FLOP ceiling (``python benchmarks/speed.py --shapes``).

Shapes (both kits, gymnax CartPole-v1, 524,288 steps per run, one seed per run):

* ``16x128``: 16 envs × 128 steps, 8 epochs × 8 minibatches (256 samples), lr 5e-4 constant;
* ``4x128``: PureJaxRL's default, 4 envs × 128 steps, 4 epochs × 4 minibatches (128 samples),
  lr 2.5e-4 annealed linearly to 0 over the updates (rejax gets the same schedule as an optax
  learning-rate function; it has no annealing option of its own).

Everything else is the same for both: tanh 64×64 actor and critic, γ 0.99, λ 0.95, clip 0.2,
entropy 0.01, value 0.5 (rejax's own differences are listed in ``rejax_peer.py``).

FLOPs per env step (:func:`flops_per_step`), counting matrix multiplies only (2 FLOPs per
multiply-add; bias adds, activations, losses, Adam, the env are left out). With ``f(net) =
2·Σ n_in·n_out`` over a net's layers (actor 4→64→64→2: 8,960; critic 4→64→64→1: 8,832):

* rollout: the actor's forward pass once per step, the critic's twice (pgjax evaluates
  ``V(s_t)`` and ``V(s'_t)`` in one pass after the rollout): ``f(actor) + 2·f(critic)``;
* SGD: every sample is seen once per epoch, forward ``f`` plus backward: the weight gradients
  ``f`` again and the input gradients of every layer but the first, ``f − 2·n_in·h₁``:
  ``epochs · Σ_net (3·f(net) − 2·obs·h₁)``.

That is 445,440 FLOPs per env step at ``16x128`` and 236,032 at ``4x128``.

The matmul rate (:func:`matmul_rate`) is measured in the same run: a ``lax.scan`` of a dependent
chain made of exactly one SGD step's matmuls at the shape's minibatch size (the forward,
weight-gradient and input-gradient products of both nets; each step's weights depend on the
previous step's gradients), FLOPs counted as above over the median time. The ceiling is
``rate / FLOPs per step`` steps/s (the rollout's matmuls are charged at the SGD rate, and
nothing else is charged at all, so the ceiling is optimistic).
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import pgjax

STEPS = 524_288
COMMON = dict(num_steps=128, actor_hidden=(64, 64), critic_hidden=(64, 64), gamma=0.99,
              gae_lambda=0.95, clip_epsilon=0.2, ent_coef=0.01, vf_coef=0.5)
SHAPES = {
    "16x128": dict(num_envs=16, num_epochs=8, num_minibatches=8, learning_rate=5e-4,
                   anneal_lr=False),
    "4x128": dict(num_envs=4, num_epochs=4, num_minibatches=4, learning_rate=2.5e-4,
                  anneal_lr=True),
}
OBS, ACTIONS = 4, 2  # CartPole-v1


def layer_sizes() -> dict:
    """Layer widths of the actor and the critic, input first."""
    return {"actor": (OBS, *COMMON["actor_hidden"], ACTIONS),
            "critic": (OBS, *COMMON["critic_hidden"], 1)}


def forward_flops(sizes) -> int:
    return 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def flops_per_step(shape: dict) -> int:
    """Matmul FLOPs of one pgjax PPO update per env step (see the module docstring)."""
    nets = layer_sizes()
    rollout = forward_flops(nets["actor"]) + 2 * forward_flops(nets["critic"])
    sgd = sum(3 * forward_flops(s) - 2 * s[0] * s[1] for s in nets.values())
    return rollout + shape["num_epochs"] * sgd


def matmul_rate(shape: dict, steps: int = 2000, repeats: int = 3) -> float:
    """FLOP/s of a dependent chain of one SGD step's matmuls at the shape's minibatch size."""
    rows = shape["num_envs"] * COMMON["num_steps"] // shape["num_minibatches"]
    nets = layer_sizes()
    key = jax.random.key(0)
    weights = [[jax.random.normal(k, (a, b)) / np.sqrt(a)
                for k, a, b in zip(jax.random.split(key, len(s) - 1), s[:-1], s[1:])]
               for s in nets.values()]
    x = jax.random.normal(key, (rows, OBS))

    def sgd_like(weights, _):
        new = []
        for ws in weights:
            acts = [x]
            for w in ws:  # forward
                acts.append(acts[-1] @ w)
            grad, grads = acts[-1], []
            for i in reversed(range(len(ws))):  # backward: weight, then input gradients
                grads.append(acts[i].T @ grad)
                if i:
                    grad = grad @ ws[i].T
            new.append([w - 1e-9 * g for w, g in zip(ws, reversed(grads))])
        return new, None

    chain = jax.jit(lambda w: jax.lax.scan(sgd_like, w, None, length=steps)[0])
    compiled = chain.lower(weights).compile()
    jax.block_until_ready(compiled(weights))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(weights))
        times.append(time.perf_counter() - start)
    flops = rows * sum(3 * forward_flops(s) - 2 * s[0] * s[1] for s in nets.values())
    return steps * flops / statistics.median(times)


def pgjax_run(shape: dict, seed: int) -> dict:
    """One pgjax training run of ``shape``: AOT compile seconds, train seconds, final return
    (mean return of the training episodes that ended in the last 5% of updates)."""
    config = pgjax.make_config("ppo", "CartPole-v1", total_timesteps=STEPS, **COMMON, **shape)
    return timed_make_train(config, seed)


def timed_make_train(config, seed: int) -> dict:
    """``jax.jit(pgjax.make_train(config))`` on ``key(seed)``, compiled with pgjax's XLA options
    (:func:`pgjax.compiler_options`, as its engine compiles): compile seconds (AOT lower and
    compile), train seconds and steps/s, final return (the training episodes that ended in
    the last 5% of updates)."""
    from pgjax.engine import final_returns

    key = jax.random.key(seed)
    start = time.perf_counter()
    compiled = jax.jit(pgjax.make_train(config)).lower(key).compile(pgjax.compiler_options())
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    _, metrics = jax.block_until_ready(compiled(key))
    seconds = time.perf_counter() - start
    metrics = jax.tree.map(lambda x: jax.device_get(x)[None], metrics)
    steps = config.num_updates * config.batch_size
    return {"compile_seconds": compile_seconds, "train_seconds": seconds,
            "steps_per_second": steps / seconds, "final_return": final_returns(metrics)[0]}


def rejax_run(shape: dict, seed: int) -> dict:
    """One rejax training run of ``shape`` (final return: rejax's own 128-episode evaluation
    after the last update, part of its train time)."""
    import gymnax
    from rejax import PPO
    from rejax_peer import GymnaxV1ToRejaxAdapter

    env, env_params = gymnax.make("CartPole-v1")
    batch = shape["num_envs"] * COMMON["num_steps"]
    steps_per_update = shape["num_epochs"] * shape["num_minibatches"]
    learning_rate = shape["learning_rate"]
    if shape["anneal_lr"]:  # PureJaxRL's linear schedule, per optimiser step count
        def learning_rate(count, lr=shape["learning_rate"], updates=STEPS // batch):
            return lr * (1.0 - (count // steps_per_update) / updates)
    algo = PPO.create(
        env=GymnaxV1ToRejaxAdapter(env), env_params=env_params,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": COMMON["actor_hidden"]},
        num_envs=shape["num_envs"], num_steps=COMMON["num_steps"],
        num_epochs=shape["num_epochs"], num_minibatches=shape["num_minibatches"],
        learning_rate=learning_rate, max_grad_norm=0.5, total_timesteps=STEPS,
        eval_freq=STEPS, skip_initial_evaluation=True, gamma=COMMON["gamma"],
        gae_lambda=COMMON["gae_lambda"], clip_eps=COMMON["clip_epsilon"],
        ent_coef=COMMON["ent_coef"], vf_coef=COMMON["vf_coef"],
        normalize_observations=False, normalize_rewards=False)
    rng = jax.random.PRNGKey(seed)
    start = time.perf_counter()
    compiled = jax.jit(algo.train).lower(rng).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    state, (_, returns) = jax.block_until_ready(compiled(rng))
    seconds = time.perf_counter() - start
    assert int(state.global_step) == STEPS, state.global_step
    return {"compile_seconds": compile_seconds, "steps_per_second": STEPS / seconds,
            "final_return": float(jnp.mean(returns[-1]))}


def compare_shapes(repeats: int = 3, names=tuple(SHAPES)) -> dict:
    """Both kits at every shape, A/B interleaved (the order alternates between repeats, seed
    = repeat); per shape the medians of the per-repeat ratios pgjax/rejax, each kit's runs,
    the FLOP count, the matmul rate (median of one measurement per repeat), the ceiling, and
    the median over repeats of pgjax's fraction of the ceiling measured in that repeat."""
    runs = {name: {"pgjax": [], "rejax": [], "rate": []} for name in names}
    kits = {"pgjax": pgjax_run, "rejax": rejax_run}
    for r in range(repeats):
        for name in names:
            shape = SHAPES[name]
            for kit in (("pgjax", "rejax") if r % 2 == 0 else ("rejax", "pgjax")):
                runs[name][kit].append(kits[kit](shape, r))
            runs[name]["rate"].append(matmul_rate(shape))
    out = {}
    for name in names:
        ours, peer = runs[name]["pgjax"], runs[name]["rejax"]
        ratio = {k: statistics.median(a[k] / b[k] for a, b in zip(ours, peer))
                 for k in ("steps_per_second", "compile_seconds")}
        flops = flops_per_step(SHAPES[name])
        rate = statistics.median(runs[name]["rate"])
        # per repeat, against the rate measured in that repeat (load drifts between repeats)
        fractions = [r["steps_per_second"] * flops / x for r, x in zip(ours, runs[name]["rate"])]
        out[name] = {"ratio": ratio, "pgjax": ours, "rejax": peer, "flops_per_step": flops,
                     "matmul_rate": rate, "ceiling": rate / flops,
                     "ceiling_fraction": statistics.median(fractions)}
    return out


def print_shapes(results: dict) -> None:
    for name, r in results.items():
        shape = SHAPES[name]
        print(f"\nshape {name}: {shape['num_envs']} envs × {COMMON['num_steps']} steps, "
              f"{shape['num_epochs']} epochs × {shape['num_minibatches']} minibatches, lr "
              f"{shape['learning_rate']:g} {'annealed' if shape['anneal_lr'] else 'constant'}")
        for kit in ("pgjax", "rejax"):
            rows = r[kit]
            print(f"  {kit}: steps/s {[round(x['steps_per_second']) for x in rows]}, compile s "
                  f"{[round(x['compile_seconds'], 2) for x in rows]}, final return "
                  f"{[round(x['final_return'], 1) for x in rows]}")
        ratio = r["ratio"]
        print(f"  pgjax/rejax (median of per-repeat ratios): steps/s "
              f"×{ratio['steps_per_second']:.2f}, compile ×{ratio['compile_seconds']:.2f}")
        print(f"  FLOPs per env step {r['flops_per_step']:,}; matmul rate "
              f"{r['matmul_rate'] / 1e9:.1f} GFLOP/s; ceiling {r['ceiling']:,.0f} steps/s; "
              f"pgjax at {100 * r['ceiling_fraction']:.0f}% of it (median)")
