"""What a uniformly random policy scores: ``python benchmarks/random_policy.py [ENV] [EPISODES]``
(default Breakout-MinAtar, 256 episodes, seed 0; discrete actions): the return and what the
env reports of each episode (Craftax: achievements), with 95% intervals."""
import sys

import pgjax

pgjax.use_host_devices()  # before the first JAX computation: one CPU device per core

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from pgjax import envs  # noqa: E402

env_id = sys.argv[1] if len(sys.argv) > 1 else "Breakout-MinAtar"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 256
env = envs.EpisodeStats(envs.make(env_id))


names = ("episode_return", *envs.episode_info(env))


def run(key):
    """The first episode of each of ``n`` envs: its return and what the env reports of it."""
    k0, key = jax.random.split(key)
    state, obs = jax.vmap(env.reset)(jax.random.split(k0, n))
    first = {name: jnp.full((n,), jnp.nan) for name in names}
    def cond(c): return jnp.isnan(c[2]["episode_return"]).any() & (c[3] < 20000)
    def body(c):
        state, key, first, t = c
        key, ka, ke = jax.random.split(key, 3)
        a = jax.random.randint(ka, (n,), 0, env.action_space.n)
        state, obs, r, term, trunc, info = jax.vmap(env.step)(jax.random.split(ke, n), state, a)
        ends = (term | trunc) & jnp.isnan(first["episode_return"])
        first = {name: jnp.where(ends, info[name], v) for name, v in first.items()}
        return state, key, first, t + 1
    return jax.lax.while_loop(cond, body, (state, key, first, 0))[2]


first = {k: np.asarray(v) for k, v in jax.jit(run)(jax.random.key(0)).items()}
r = first["episode_return"]
print(f"random policy {env_id}: {n} episodes, mean {np.nanmean(r):.2f} ± {np.nanstd(r):.2f} "
      f"(max {np.nanmax(r):.0f}, unfinished {np.isnan(r).sum()})")
for name, values in first.items():  # mean and its 95% interval (normal approximation)
    values = values[np.isfinite(values)]
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    print(f"  {name}: {values.mean():.3f}, 95% interval [{values.mean() - half:.3f}, "
          f"{values.mean() + half:.3f}]")
