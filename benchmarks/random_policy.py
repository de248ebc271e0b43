"""What a uniformly random policy scores: ``python benchmarks/random_policy.py [ENV] [EPISODES]``
(default Breakout-MinAtar, 256 episodes, seed 0; discrete actions)."""
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


def run(key):
    k0, key = jax.random.split(key)
    state, obs = jax.vmap(env.reset)(jax.random.split(k0, n))
    ret = jnp.full((n,), jnp.nan)
    def cond(c): return jnp.isnan(c[2]).any() & (c[3] < 20000)
    def body(c):
        state, key, ret, t = c
        key, ka, ke = jax.random.split(key, 3)
        a = jax.random.randint(ka, (n,), 0, env.action_space.n)
        state, obs, r, term, trunc, info = jax.vmap(env.step)(jax.random.split(ke, n), state, a)
        first = (term | trunc) & jnp.isnan(ret)
        return state, key, jnp.where(first, info["episode_return"], ret), t + 1
    return jax.lax.while_loop(cond, body, (state, key, ret, 0))[2]
r = np.asarray(jax.jit(run)(jax.random.key(0)))
print(f"random policy {env_id}: {n} episodes, mean {np.nanmean(r):.2f} ± {np.nanstd(r):.2f} (max {np.nanmax(r):.0f}, unfinished {np.isnan(r).sum()})")
