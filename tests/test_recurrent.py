"""The GRU cell (pgjax.recurrent): equal to flax's GRUCell with the same weights, and its scan
equal to a step-by-step loop that zeroes the state exactly at episode starts."""

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.recurrent import gru_init, gru_scan, gru_step

INPUTS, HIDDEN = 3, 5


def test_gru_step_equals_flax_gru_cell():
    import flax.linen as nn

    params = gru_init(jax.random.key(0), INPUTS, HIDDEN)
    params = {**params, "b_i": jax.random.normal(jax.random.key(1), (3 * HIDDEN,)),
              "b_hn": jax.random.normal(jax.random.key(2), (HIDDEN,))}
    w_i, w_h = np.split(params["w_i"], 3, axis=1), np.split(params["w_h"], 3, axis=1)
    b_i = np.split(params["b_i"], 3)
    flax_params = {"params": {
        "ir": {"kernel": w_i[0], "bias": b_i[0]}, "iz": {"kernel": w_i[1], "bias": b_i[1]},
        "in": {"kernel": w_i[2], "bias": b_i[2]}, "hr": {"kernel": w_h[0]},
        "hz": {"kernel": w_h[1]}, "hn": {"kernel": w_h[2], "bias": params["b_hn"]}}}
    h = jax.random.normal(jax.random.key(3), (4, HIDDEN))
    x = jax.random.normal(jax.random.key(4), (4, INPUTS))
    flax_h, _ = nn.GRUCell(features=HIDDEN).apply(flax_params, h, x)
    np.testing.assert_allclose(gru_step(params, h, x), flax_h, rtol=1e-5, atol=1e-6)


def test_gru_scan_resets_exactly_at_episode_starts():
    params = gru_init(jax.random.key(0), INPUTS, HIDDEN)
    steps, envs = 12, 3
    xs = jax.random.normal(jax.random.key(1), (steps, envs, INPUTS))
    resets = jnp.zeros((steps, envs), bool).at[4, 0].set(True).at[7, 2].set(True)
    h0 = jax.random.normal(jax.random.key(2), (envs, HIDDEN))
    last, hs = jax.jit(gru_scan)(params, h0, xs, resets)
    h = h0
    for t in range(steps):  # the explicit loop
        h = jnp.stack([gru_step(params, jnp.zeros(HIDDEN) if resets[t, e] else h[e], xs[t, e])
                       for e in range(envs)])
        np.testing.assert_allclose(hs[t], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(last, h, rtol=1e-5, atol=1e-6)
    # After env 0's reset at t = 4 its states do not depend on what came before.
    _, other = gru_scan(params, h0 + 1.0, xs.at[:4].add(1.0), resets)
    np.testing.assert_array_equal(other[4:, 0], hs[4:, 0])
    assert not np.allclose(other[4:, 1], hs[4:, 1])  # env 1 never reset: it remembers
