"""The update's randomness drawn in few RNG calls gives the same draws, and the SGD scan's
minibatches are the batch's samples with each minibatch's advantages normalised."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax import advantages
from pgjax.distributions import Categorical, DiagGaussian, TanhGaussian
from pgjax.rollout import rollout, rollout_keys, sample_with_noise, sampling_noise
from pgjax.trainer import make_env, make_network
from pgjax.updates import Batch, minibatch_order, minibatches, take

KEYS = jax.random.split(jax.random.key(7), 5)
POLICIES = {
    "categorical": Categorical(jax.random.normal(jax.random.key(1), (3, 4))),
    "gaussian": DiagGaussian(jax.random.normal(jax.random.key(2), (3, 2)), jnp.array([-0.5, 0.3])),
    "tanh": TanhGaussian(jax.random.normal(jax.random.key(3), (3, 2)), jnp.array([0.2, -1.0])),
}


@pytest.mark.parametrize("name", POLICIES)
def test_noise_drawn_first_samples_as_the_key_does(name):
    policy = POLICIES[name]
    noise = sampling_noise(jax.eval_shape(lambda: policy), KEYS)
    assert noise.shape == (len(KEYS),) + jax.tree.leaves(policy)[0].shape
    for key, row in zip(KEYS, noise):
        np.testing.assert_array_equal(sample_with_noise(policy, row), policy.sample(key))


def test_no_noise_for_other_distributions():
    assert sampling_noise(object(), KEYS) is None


@pytest.mark.parametrize("env_id, extra", [("CartPole-v1", {}), ("Pendulum-v1", {})])
def test_rollout_from_split_keys_equals_rollout_from_key(env_id, extra):
    config = pgjax.make_config("ppo", env_id, num_envs=3, num_steps=8, total_timesteps=48,
                               **extra)
    env = make_env(config)
    network = make_network(config, env)
    state = pgjax.make_trainer(config).init(jax.random.key(0))

    def collect(key):
        return rollout(env, network, state.params.actor, state.env_state, state.obs, key, 8)[2]

    keys = rollout_keys(jax.random.key(4), 8, 3)
    assert keys.shape == (8, 4)
    assert rollout_keys(keys, 8, 3) is keys  # already split: as they are
    for a, b in zip(jax.tree.leaves(collect(jax.random.key(4))), jax.tree.leaves(collect(keys))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("normalize", [True, False])
def test_minibatches_gather_the_order_and_normalise_each(normalize):
    config = pgjax.make_config("ppo", "CartPole-v1", num_envs=4, num_steps=8, num_epochs=3,
                               num_minibatches=2, total_timesteps=64,
                               normalize_advantages=normalize)
    n = config.batch_size
    batch = Batch(obs=jnp.arange(n * 4.0).reshape(n, 4), action=jnp.arange(n) % 2,
                  old_log_prob=-jnp.arange(n) / n, old_value=jnp.arange(n) * 0.5,
                  advantage=jnp.sin(jnp.arange(n) * 1.7) * 3.0 + 1.0,
                  target=jnp.arange(n) * 2.0)
    key = jax.random.key(3)
    got = minibatches(batch, key, config)
    order = minibatch_order(key, config)
    assert order.shape == (6, n // 2)
    want = take(batch, order)
    for field in ("obs", "action", "old_log_prob", "old_value", "target"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    for row, adv in zip(want.advantage, got.advantage):
        expected = advantages.normalize(row) if normalize else row
        np.testing.assert_allclose(adv, expected, rtol=1e-6, atol=1e-6)
    # every epoch is a permutation of the batch
    for epoch in np.asarray(order).reshape(3, -1):
        assert sorted(epoch.tolist()) == list(range(n))
