"""Network initialisation follows the PPO conventions (orthogonal weights, zero biases)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.networks import mlp_init, orthogonal


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (64, 1)])
def test_orthogonal_has_orthonormal_rows_or_columns(shape):
    w = np.asarray(orthogonal(jax.random.normal(jax.random.key(1), shape), gain=2.0))
    small = min(shape)
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-4)


def test_orthogonal_matches_the_law_of_jax_initializer():
    # Same law as jax.nn.initializers.orthogonal: entries of a (64, 64) orthogonal matrix have
    # variance 1/64; check the empirical variance over many draws.
    draws = jax.vmap(lambda k: orthogonal(jax.random.normal(k, (8, 8))))(
        jax.random.split(jax.random.key(0), 2000))
    reference = jax.vmap(lambda k: jax.nn.initializers.orthogonal()(k, (8, 8)))(
        jax.random.split(jax.random.key(1), 2000))
    assert abs(float(jnp.var(draws)) - float(jnp.var(reference))) < 0.01
    assert abs(float(jnp.mean(draws))) < 0.01


def test_mlp_init_gains_and_zero_biases():
    layers = mlp_init(jax.random.key(0), (4, 64, 64, 2), out_scale=0.01)
    assert [layer["w"].shape for layer in layers] == [(4, 64), (64, 64), (64, 2)]
    np.testing.assert_allclose(np.asarray(layers[1]["w"].T @ layers[1]["w"]),
                               2.0 * np.eye(64), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(layers[2]["w"]), axis=0), 0.01,
                               rtol=1e-4)
    assert all(float(jnp.abs(layer["b"]).max()) == 0.0 for layer in layers)
