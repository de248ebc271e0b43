"""The GRU cell (pgjax.recurrent): equal to flax's GRUCell with the same weights, and its scan
equal to a step-by-step loop that zeroes the state exactly at episode starts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


@pytest.mark.slow
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


TINY_GRU = dict(memory="gru", memory_size=8, total_timesteps=2048, num_envs=4, num_steps=64,
                num_minibatches=2, num_epochs=2, actor_hidden=(16,), critic_hidden=(16,))


@pytest.mark.slow
def test_the_stored_start_state_reproduces_the_rollout():
    """Re-running the cells over each env's sequence from the state stored at the rollout's
    start gives the rollout's log-probabilities (ratio 1 before the first step), across the
    episode starts inside the sequences."""
    import pgjax
    from pgjax.trainer import (advantages_and_targets, collect_sequences, make_env,
                               make_network)

    config = pgjax.make_config("ppo", "StatelessCartPole-v1", **TINY_GRU)
    env = make_env(config)
    network = make_network(config, env)
    state = pgjax.make_trainer(config).init(jax.random.key(0))
    state = state.replace(memory=jax.tree.map(lambda x: x + 0.3, state.memory))  # mid-episode
    _, _, memory, traj, batch = jax.jit(
        lambda s, k: collect_sequences(config, env, network, s, k))(state, jax.random.key(1))
    assert int(traj.done.sum()) > 4  # episodes ended inside the sequences
    log_prob = network.policy(state.params.actor, batch.obs).log_prob(batch.action)
    np.testing.assert_allclose(log_prob, batch.old_log_prob, atol=2e-6)
    np.testing.assert_allclose(network.value(state.params.critic, batch.obs), batch.old_value,
                               atol=2e-5)
    assert batch.action.shape == (4, 64) and batch.obs.obs.shape == (4, 64, 2)

    # Step by step: V(s'_t) is read by the critic's cell from its state after step t (so an
    # episode's final observation is valued with that episode's memory), and the next rollout
    # starts from both cells' states after the last step, zeroed where it ended an episode.
    params, resets = state.params, jnp.swapaxes(batch.obs.resets, 0, 1)

    def step(carry, x):
        h_actor, h_critic = carry
        obs, next_obs, reset = x
        _, h_actor = network.policy_step(params.actor, h_actor, obs, reset)
        value, h_critic = network.value_step(params.critic, h_critic, obs, reset)
        next_value, _ = network.value_step(params.critic, h_critic, next_obs,
                                           jnp.zeros_like(reset))
        return (h_actor, h_critic), (value, next_value)

    (h_actor, h_critic), (values, next_values) = jax.jit(lambda: jax.lax.scan(
        step, (state.memory.actor, state.memory.critic), (traj.obs, traj.next_obs, resets)))()
    advantages, _ = advantages_and_targets(config, traj, values, next_values)
    np.testing.assert_allclose(batch.advantage, advantages.T, atol=1e-4)
    ended = np.asarray(traj.done[-1])[:, None]
    assert not ended.all()  # (reset_state, which zeroes the rest, is gru_scan's own reset)
    np.testing.assert_allclose(memory.actor, np.where(ended, 0, h_actor), atol=1e-5)
    np.testing.assert_allclose(memory.critic, np.where(ended, 0, h_critic), atol=1e-5)


@pytest.mark.slow
def test_recurrent_runs_vmap_over_seeds_and_resume_bit_identically(tmp_path):
    import pgjax
    from pgjax.checkpoint import CheckpointOptions

    config = pgjax.make_config("spo", "StatelessCartPole-v1", **TINY_GRU)
    keys = jax.random.split(jax.random.key(0), 2)
    options = CheckpointOptions(every_seconds=None, every_updates=1, keep=10)
    # The engine vmaps the two seeds on one device: each as it trains alone.
    whole = pgjax.train(config, seeds=2, out=tmp_path / "run", num_chunks=8, progress=False,
                        checkpoint=options, devices=jax.devices()[:1])
    train = jax.jit(pgjax.make_train(config))
    for i in range(2):
        alone = train(keys[i])
        np.testing.assert_allclose(alone[1]["policy_loss"], whole.metrics["policy_loss"][i],
                                   rtol=1e-4, atol=1e-6)
    checkpoints = tmp_path / "run" / "checkpoints"
    for step in (5, 6, 7, 8):  # as if it had been killed after update 4
        import shutil
        shutil.rmtree(checkpoints / str(step))
    resumed = pgjax.resume(tmp_path / "run", progress=False, devices=jax.devices()[:1])
    assert resumed.summary["resumed_at_update"] == 4
    for name in whole.metrics:
        np.testing.assert_array_equal(resumed.metrics[name], whole.metrics[name])
    for a, b in zip(jax.tree.leaves(whole.final_state), jax.tree.leaves(resumed.final_state)):
        np.testing.assert_array_equal(jax.random.key_data(a) if jnp.issubdtype(
            a.dtype, jax.dtypes.prng_key) else a, jax.random.key_data(b) if jnp.issubdtype(
            b.dtype, jax.dtypes.prng_key) else b)


def test_memory_is_refused_where_it_is_not_supported_in_one_line():
    import pytest

    import pgjax

    import dataclasses

    own = pgjax.register(dataclasses.replace(pgjax.ALGORITHMS["trpo"], name="feedforward_trpo",
                                             supports_memory=False))
    with pytest.raises(ValueError, match="memory: feedforward_trpo's own update rule does not "
                                         "declare supports_memory=True"):
        pgjax.make_config(own.name, "StatelessCartPole-v1", memory="gru")
    with pytest.raises(ValueError, match="fisher_subsample: 5 exceeds the batch \\(num_envs, "
                                         "the env sequences = 4\\)"):
        pgjax.make_config("trpo", "StatelessCartPole-v1", fisher_subsample=5, **TINY_GRU)
    with pytest.raises(ValueError, match="num_minibatches: 3 does not divide num_envs = 4"):
        pgjax.make_config("ppo", "StatelessCartPole-v1", **{**TINY_GRU, "num_minibatches": 3,
                                                             "num_steps": 96})
    with pytest.raises(ValueError, match="memory: 'lstm' is not one of none, gru"):
        pgjax.make_config("ppo", "CartPole-v1", memory="lstm")


@pytest.mark.slow
def test_trust_region_updates_hold_their_bounds_through_the_recurrent_policy():
    """TRPO's Fisher-vector product and FixPO's fix-up differentiate through the cells re-run
    over each env sequence: the KL they bound, measured afterwards over every step of every
    sequence, holds (TRPO: accepted steps of KL between 0.1·δ and 1.5·δ, so the curvature is
    the policy's; FixPO: max KL ≤ ε_KL after fix-up steps); MDPO's full-batch steps move the
    policy."""
    import pgjax

    small = {**TINY_GRU, "total_timesteps": 4 * 256}
    # FixPO made to step past its bound (a tight ε_KL, a large step), so its fix-up runs.
    settings = {"trpo": small, "mdpo": small, "fixpo": {
        **small, "eps_kl": 1e-3, "learning_rate": 1e-2, "fixup_minibatch_size": 128,
        "fixup_max_passes": 50}}
    runs = {algo: jax.jit(pgjax.make_train(pgjax.make_config(
        algo, "StatelessCartPole-v1", **kwargs)))(jax.random.key(1))[1]
        for algo, kwargs in settings.items()}
    trpo, fixpo, mdpo = runs["trpo"], runs["fixpo"], runs["mdpo"]
    max_kl = pgjax.make_config("trpo", "StatelessCartPole-v1", **small).hparams.max_kl
    assert (np.asarray(trpo["step_accepted"]) == 1).all()
    assert (np.asarray(trpo["kl"]) > 0.1 * max_kl).all()
    assert (np.asarray(trpo["kl"]) <= 1.5 * max_kl).all()
    assert np.asarray(fixpo["fixup_steps"]).sum() > 10
    assert (np.asarray(fixpo["kl_bound_held"]) == 1).all()
    assert (np.asarray(mdpo["kl_new_old"]) > 0).all()
    for metrics in runs.values():
        assert np.isfinite(np.asarray(metrics["value_loss"])).all()
        assert (np.asarray(metrics["nonfinite"]) == 0).all()


def test_fixpo_fixup_minibatches_are_whole_sequences_of_as_many_transitions():
    """With memory a fix-up minibatch is ``fixup_minibatch_size // num_steps`` env sequences
    (at least one), split by the same chunking as the transitions of a feed-forward run."""
    import pgjax
    from pgjax.algorithms.fixpo import fixup_chunks, fixup_minibatch_units
    from pgjax.updates import num_samples

    for size, units, chunks in ((128, 2, 2), (200, 3, 1), (16, 1, 4)):
        config = pgjax.make_config("fixpo", "StatelessCartPole-v1", **TINY_GRU,
                                   fixup_minibatch_size=size)  # 4 envs × 64 steps
        assert (num_samples(config), fixup_minibatch_units(config)) == (4, units)
        positions, mask = fixup_chunks(num_samples(config), units)
        assert positions.shape[0] == chunks and sorted(positions[mask].tolist()) == [0, 1, 2, 3]
    feed_forward = pgjax.make_config("fixpo", "CartPole-v1", num_envs=4, num_steps=64,
                                     fixup_minibatch_size=128)
    assert (num_samples(feed_forward), fixup_minibatch_units(feed_forward)) == (256, 128)


@pytest.mark.slow
def test_a_trained_recurrent_policy_carries_its_memory_in_act_evaluate_and_eval(tmp_path,
                                                                                capsys):
    """make_policy's act, stepped with the memory it returns, takes the actions of the policy
    over the whole sequence (so the state is carried, not reset); evaluate plays episodes of
    it and `pgjax eval` reads a recurrent run's saved policies."""
    import pgjax
    from pgjax.cli import main
    from pgjax.recurrent import Memory, Sequences
    from pgjax.trainer import make_env, make_network

    config = pgjax.make_config("ppo", "StatelessCartPole-v1", **TINY_GRU)
    result = pgjax.train(config, seeds=2, out=tmp_path / "run", num_chunks=1, progress=False,
                         devices=jax.devices()[:1])
    state = jax.tree.map(lambda x: x[0], result.final_state)
    act = jax.jit(pgjax.make_policy(config, state), static_argnames="deterministic")
    obs = jax.random.normal(jax.random.key(2), (12, 2))
    memory, actions = pgjax.initial_memory(config), []
    for t in range(12):
        action, memory = act(jax.random.key(t), obs[t], memory, deterministic=True)
        actions.append(int(action))
    network = make_network(config, make_env(config))
    zeros = network.initial_memory((1,))
    whole = network.policy(state.params.actor, Sequences(
        obs[None], jnp.zeros((1, 12), bool), Memory(zeros.actor, zeros.critic))).mode()
    assert actions == np.asarray(whole[0]).tolist() and len(set(actions)) == 2
    h = zeros.actor[0]
    for t in range(12):
        _, h = network.policy_step(state.params.actor, h, obs[t], jnp.zeros((), bool))
    np.testing.assert_allclose(memory, h, atol=1e-5)  # the cell state after the 12 steps
    returns = jax.jit(lambda k: pgjax.evaluate(config, state, k, 3))(jax.random.key(4))
    assert returns.shape == (3,) and np.isfinite(np.asarray(returns)).all()
    assert main(["eval", str(tmp_path / "run"), "--episodes", "2"]) == 0
    assert "eval return" in capsys.readouterr().out
    with pytest.raises(ValueError, match="initial_memory: this config's policy is feed-forward"):
        pgjax.initial_memory(pgjax.make_config("ppo", "CartPole-v1"))


@pytest.mark.slow
def test_a_recurrent_sweep_compiles_once_per_group(tmp_path, monkeypatch):
    """memory is static (it splits groups); a float grid over recurrent runs stays one group
    and one compile of each program (init, chunk) for all its runs."""
    import pgjax
    from pgjax import engine

    traced, make_trainer = [], engine.make_trainer
    monkeypatch.setattr(engine, "make_trainer",
                        lambda config: traced.append(config.memory) or make_trainer(config))
    settings = {k: v for k, v in TINY_GRU.items() if k != "memory"}
    result = pgjax.sweep(dict(algos=["ppo"], envs=["StatelessCartPole-v1"], seeds=2,
                              set={**settings, "total_timesteps": 4 * 64 * 2},
                              grid={"learning_rate": [1e-3, 3e-3], "memory": ["none", "gru"]}),
                         out=tmp_path, progress=False)
    assert sorted(traced) == ["gru", "gru", "none", "none"]
    assert [g.group.configs[0].memory for g in result.groups] == ["none", "gru"]
    assert all(len(g.group.configs) == 2 and g.record["runs"] == 4 for g in result.groups)
