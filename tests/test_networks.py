"""Network initialisation follows the PPO conventions (orthogonal weights, zero biases)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.envs import Box, Discrete
from pgjax.networks import (SMALL_ROWS, SMALL_WIDTH, affine, conv_apply, dense,
                            make_actor_critic, mlp_init, orthogonal)


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


def _conv_reference(x, w, b):
    """Direct VALID 3×3 cross-correlation + ReLU in numpy, ``x [N, H, W, C]``."""
    n, h, wd, _ = x.shape
    out = np.zeros((n, h - 2, wd - 2, w.shape[-1]))
    for i in range(h - 2):
        for j in range(wd - 2):
            out[:, i, j] = np.einsum("nabc,abco->no", x[:, i:i + 3, j:j + 3], w)
    return np.maximum(out + b, 0.0)


def test_cnn_torso_is_a_valid_convolution_with_relu():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    layer = {"w": jax.random.normal(k1, (3, 3, 4, 5)), "b": jax.random.normal(k2, (5,))}
    x = jax.random.uniform(k3, (2, 3, 7, 6, 4))  # two leading batch axes
    out = conv_apply([layer], x)
    assert out.shape == (2, 3, 5 * 4 * 5)
    expected = _conv_reference(np.asarray(x).reshape(6, 7, 6, 4), np.asarray(layer["w"]),
                               np.asarray(layer["b"]))
    np.testing.assert_allclose(np.asarray(out).reshape(6, 5, 4, 5), expected, rtol=1e-4,
                               atol=1e-4)


def test_torso_is_chosen_by_observation_shape():
    image, flat = Box.make(0.0, 1.0, (10, 10, 4)), Box.make(-1.0, 1.0, (8,))
    cnn = make_actor_critic(image, Discrete(3), (32,), (32,))
    mlp = make_actor_critic(flat, Discrete(3), (32,), (32,))
    assert cnn.conv_channels == (16,) and mlp.conv_channels == ()
    assert make_actor_critic(image, Discrete(3), (32,), (32,), torso="mlp").conv_channels == ()
    params = cnn.init(jax.random.key(0))
    kernel = np.asarray(params.actor["conv"][0]["w"]).reshape(36, 16)
    np.testing.assert_allclose(kernel.T @ kernel, 2.0 * np.eye(16), atol=1e-4)  # gain √2
    assert params.actor["mlp"][0]["w"].shape == (8 * 8 * 16, 32)
    obs = jax.random.uniform(jax.random.key(1), (5, 10, 10, 4))
    assert cnn.policy(params.actor, obs).logits.shape == (5, 3)
    assert cnn.value(params.critic, obs).shape == (5,)
    # Actor and critic own separate torsos, drawn independently.
    assert not np.allclose(params.actor["conv"][0]["w"], params.critic["conv"][0]["w"])
    with pytest.raises(ValueError, match="torso"):
        make_actor_critic(flat, Discrete(3), (32,), (32,), torso="cnn")
    with pytest.raises(ValueError, match="action_head"):
        make_actor_critic(flat, Discrete(3), (32,), (32,), squash=True)


@pytest.mark.parametrize("lead", [(), (5,), (3, 5)])
def test_dense_derivatives_equal_the_plain_matmul(lead):
    """dense's own JVP rule (a transposed copy of x for the weight gradient) gives the same
    values, gradients, forward-mode tangents, second derivatives and vmap as ``x @ w + b``."""
    kx, kw, kb, kt = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(kx, lead + (4,))
    w, b = jax.random.normal(kw, (4, 3)), jax.random.normal(kb, (3,))

    def plain(x, w, b):
        return x @ w + b

    def loss(f):
        return lambda x, w, b: jnp.sum(jnp.tanh(f(x, w, b)) ** 2)

    np.testing.assert_allclose(dense(x, w, b), plain(x, w, b), rtol=1e-6)
    for argnums in [(1, 2), (0, 1, 2), (1,)]:
        got = jax.grad(loss(dense), argnums)(x, w, b)
        want = jax.grad(loss(plain), argnums)(x, w, b)
        for g, h in zip(got, want):
            np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-6)
    tangents = jax.tree.map(lambda a: jax.random.normal(kt, a.shape), (x, w, b))
    _, got = jax.jvp(dense, (x, w, b), tangents)
    _, want = jax.jvp(plain, (x, w, b), tangents)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    hvp = jax.jvp(jax.grad(loss(dense), 1), (x, w, b), tangents)[1]
    hvp_plain = jax.jvp(jax.grad(loss(plain), 1), (x, w, b), tangents)[1]
    np.testing.assert_allclose(hvp, hvp_plain, rtol=1e-4, atol=1e-5)
    stacked = jnp.stack([w, 2 * w])
    got = jax.vmap(jax.grad(loss(dense), 1), (None, 0, None))(x, stacked, b)
    want = jax.vmap(jax.grad(loss(plain), 1), (None, 0, None))(x, stacked, b)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows, n_in, n_out, matmul", [
    (4, 4, 64, False), (SMALL_ROWS, 64, 2, False), (1, 64, SMALL_WIDTH, False),
    (SMALL_ROWS + 1, 4, 64, True), (4, 64, 64, True), (128, 4, 64, True)])
def test_few_rows_through_a_narrow_layer_are_products_and_a_sum(rows, n_in, n_out, matmul):
    """A rollout's few rows through a narrow layer are computed without a matmul (one fused
    kernel); everything else is a matmul; both equal ``x @ w + b``."""
    kx, kw = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (rows, n_in))
    w, b = jax.random.normal(kw, (n_in, n_out)), jnp.linspace(-1.0, 1.0, n_out)
    jaxpr = str(jax.make_jaxpr(dense)(x, w, b))
    assert ("dot_general" in jaxpr) == matmul
    np.testing.assert_allclose(affine(x, w, b), np.asarray(x) @ np.asarray(w) + np.asarray(b),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation, nonlinearity", [
    ("tanh", np.tanh), ("swish", lambda x: x / (1.0 + np.exp(-x))),
    ("relu", lambda x: np.maximum(x, 0.0)), ("elu", lambda x: np.where(x > 0, x, np.expm1(x)))])
def test_activation_is_the_hidden_layers_nonlinearity(activation, nonlinearity):
    """The config's ``activation`` reaches every hidden layer of actor and critic (not the
    outputs): the value and the logits equal a NumPy forward pass with that nonlinearity."""
    import pgjax
    from pgjax.trainer import make_network

    config = pgjax.make_config("ppo", "CartPole-v1", activation=activation,
                               actor_hidden=(8, 8), critic_hidden=(16, 16, 16))
    env = pgjax.envs.make(config.env)
    network = make_network(config, env)
    params = network.init(jax.random.key(0))
    obs = np.asarray(jax.random.normal(jax.random.key(1), (5, 4)))

    def forward(layers):
        x = obs
        for layer in layers[:-1]:
            x = nonlinearity(x @ np.asarray(layer["w"]) + np.asarray(layer["b"]))
        return x @ np.asarray(layers[-1]["w"]) + np.asarray(layers[-1]["b"])

    np.testing.assert_allclose(network.value(params.critic, obs),
                               forward(params.critic["mlp"])[:, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(network.policy(params.actor, obs).logits,
                               forward(params.actor["mlp"]), rtol=1e-4, atol=1e-6)
