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


def test_recurrent_policy_over_sequences_equals_the_step_by_step_rollout():
    from pgjax.envs import Box, Discrete
    from pgjax.recurrent import RecurrentActorCritic, Sequences

    for action_space in (Discrete(3), Box.make(-1, 1, (2,))):
        discrete = isinstance(action_space, Discrete)
        net = RecurrentActorCritic((4,), 3 if discrete else 2, discrete, (16,), (16,),
                                   memory_size=8)
        params = net.init(jax.random.key(0))
        envs, steps = 3, 7
        obs = jax.random.normal(jax.random.key(1), (steps, envs, 4))
        resets = jnp.zeros((steps, envs), bool).at[3, 1].set(True)
        actions = jax.random.randint(jax.random.key(2), (steps, envs), 0, 3) if discrete else \
            jax.random.normal(jax.random.key(2), (steps, envs, 2)) * 0.3
        memory = net.initial_memory((envs,))
        start = jax.tree.map(lambda x: x + 0.1, memory)  # a rollout that began mid-episode
        h_actor, h_critic, log_probs, values = start.actor, start.critic, [], []
        for t in range(steps):
            policy, h_actor = net.policy_step(params.actor, h_actor, obs[t], resets[t])
            value, h_critic = net.value_step(params.critic, h_critic, obs[t], resets[t])
            log_probs.append(policy.log_prob(actions[t]))
            values.append(value)
        sequences = Sequences(jnp.swapaxes(obs, 0, 1), resets.T, start)
        policy = net.policy(params.actor, sequences)
        np.testing.assert_allclose(policy.log_prob(jnp.swapaxes(actions, 0, 1)),
                                   jnp.stack(log_probs).T, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(net.value(params.critic, sequences), jnp.stack(values).T,
                                   rtol=1e-5, atol=1e-5)
        # Sequences are gathered by their leading axis, like samples.
        picked = jax.tree.map(lambda x: x[jnp.array([2, 0])], sequences)
        np.testing.assert_allclose(net.value(params.critic, picked),
                                   jnp.stack(values).T[jnp.array([2, 0])], rtol=1e-5, atol=1e-5)
