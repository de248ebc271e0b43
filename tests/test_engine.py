"""The trainer held to its equations on toy environments whose right answers are known.

Each test here fails on a specific wrong engine (tests/mutation.py lists the deliberate bugs
and which tests kill them): the time-limit bootstrap from ``info["final_observation"]``, the
terminal cut, the reward scale, the value and entropy terms of the loss, per-minibatch advantage
normalisation, the global-norm clip and the learning-rate schedule, episode statistics across
rollout boundaries, and TRPO's step to the edge of its KL ball.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import pgjax
from pgjax import drifts, envs, losses
from pgjax.algorithms import trpo
from pgjax.networks import make_actor_critic
from pgjax.trainer import make_env, make_network
from pgjax.updates import make_optimizer
from pgjax.updates import Batch, DriftInputs, mirror_loss


class PhaseClock:
    """Observation one-hot(t mod P); episodes of ``length`` steps that end alternately in a true
    terminal state (odd episodes) and a time limit (even ones); resets itself.

    The reward of each step is chosen so that ``values[p]`` is the exact value of phase p::

        r_t = reward_scale⁻¹ · (V(p_t) − γ·(1 − terminated_t)·V(p_{t+1}))

    with p_{t+1} the phase of the *final* observation when the episode ends (``length`` is not
    a multiple of P, so it differs from the post-reset phase 0). A critic that outputs
    ``values`` then has every TD error zero — but only in a trainer that bootstraps time limits
    from the final observation, cuts the bootstrap at terminal states and scales rewards.
    """

    def __init__(self, values, *, gamma, reward_scale=1.0, length=4):
        self.values = np.asarray(values, np.float32)
        self.phases = len(self.values)
        assert length % self.phases, "the final phase must differ from the reset phase"
        self.gamma, self.reward_scale, self.length = gamma, reward_scale, length
        self.observation_space = envs.Box.make(0.0, 1.0, (self.phases,))
        self.action_space = envs.Discrete(2)

    def reset(self, key):
        return (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)), self._obs(0)

    def _obs(self, t):
        return jax.nn.one_hot(t % self.phases, self.phases)

    def step(self, key, state, action):
        t, episode = state
        values = jnp.asarray(self.values)
        ends = t + 1 == self.length
        terminated = ends & (episode % 2 == 1)
        truncated = ends & (episode % 2 == 0)
        next_value = jnp.where(terminated, 0.0, values[(t + 1) % self.phases])
        reward = (values[t % self.phases] - self.gamma * next_value) / self.reward_scale
        state = (jnp.where(ends, 0, t + 1), episode + ends)
        obs = jnp.where(ends, self._obs(0), self._obs(t + 1))
        return state, obs, reward, terminated, truncated, {"final_observation": self._obs(t + 1)}


class TimeLimitOnly:
    """Constant observation, reward 1 every step, no terminal state, a time limit every
    ``length`` steps: the value of every state is ``1 / (1 − γ)`` (treating the time limit as
    terminal would give ``(1 − γ^k)/(1 − γ)`` with k steps left)."""

    observation_space = envs.Box.make(-1.0, 1.0, (2,))
    action_space = envs.Discrete(2)

    def __init__(self, length):
        self.length = length

    def reset(self, key):
        return jnp.zeros((), jnp.int32), jnp.ones(2)

    def step(self, key, t, action):
        truncated = t + 1 == self.length
        return (jnp.where(truncated, 0, t + 1), jnp.ones(2), jnp.float32(1.0), jnp.bool_(False),
                truncated, {"final_observation": jnp.ones(2)})


# --- the time-limit bootstrap, the terminal cut and the reward scale -------------------------

EXACT = dict(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1, total_timesteps=32,
             gamma=0.9, reward_scale=2.0)


@pytest.fixture(scope="module")
def exact_critic_update():
    """One update on PhaseClock whose rewards make the trainer's initial critic exact."""
    key = jax.random.key(3)
    probe = pgjax.make_config("ppo", PhaseClock(np.zeros(3), gamma=0.9), **EXACT)
    trainer = pgjax.make_trainer(probe)
    params = trainer.init(key).params
    network = make_network(probe, make_env(probe))
    values = 50.0 * network.value(params.critic, jnp.eye(3))  # well apart: |ΔV| > 1
    critic = jax.tree.map(lambda x: x, params.critic)
    critic["mlp"][-1] = {k: 50.0 * v for k, v in critic["mlp"][-1].items()}
    env = PhaseClock(values, gamma=0.9, reward_scale=2.0)
    config = pgjax.make_config("ppo", env, **EXACT)
    state = pgjax.make_trainer(config).init(key)
    state = state.replace(params=state.params.replace(critic=critic))
    _, metrics = jax.jit(pgjax.make_trainer(config).update)(state)
    return values, metrics


def test_exact_critic_has_zero_td_error_at_time_limits_and_terminals(exact_critic_update):
    values, metrics = exact_critic_update
    assert float(jnp.ptp(values)) > 1.0
    # Targets equal the critic's values: the value loss (of the one step, at the initial
    # parameters) is zero and the values explain all of the targets' variance.
    assert float(metrics["value_loss"]) < 1e-8, float(metrics["value_loss"])
    assert float(metrics["explained_variance"]) > 1 - 1e-5
    # Both kinds of episode end were in the rollout: 2 envs × 4 episodes of 4 steps.
    assert float(metrics["episodes"]) == 8


def test_critic_learns_the_infinite_horizon_value_under_time_limits():
    """V → r/(1 − γ) = 10 with only time limits (5 steps); without the bootstrap the mean
    target would be ≈ 4.1."""
    config = pgjax.make_config(
        "ppo", TimeLimitOnly(5), num_envs=4, num_steps=8, num_epochs=4, num_minibatches=2,
        total_timesteps=4 * 8 * 60, gamma=0.9, learning_rate=1e-2, anneal_lr=False,
        clip_value_loss=False)
    state, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(0))
    network = make_network(config, make_env(config))
    value = float(network.value(state.params.critic, jnp.ones(2)))
    assert abs(value - 10.0) < 0.5, value


# --- episode statistics across rollout boundaries ---------------------------------------------

def test_episode_statistics_span_rollouts():
    """Episodes of 6 steps, rollouts of 4: an episode ends in updates 1, 2, 4, 5, 7, ... and
    none in updates 0, 3, 6 (NaN). Returns and lengths are whole episodes, not rollout
    pieces."""
    config = pgjax.make_config("ppo", TimeLimitOnly(6), num_envs=3, num_steps=4,
                               num_epochs=1, num_minibatches=1, total_timesteps=3 * 4 * 9)
    _, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(0))
    ends = np.array([sum((s + 1) % 6 == 0 for s in range(4 * u, 4 * u + 4)) for u in range(9)])
    np.testing.assert_array_equal(metrics["episodes"], 3 * ends)
    finished = ends > 0
    np.testing.assert_array_equal(np.asarray(metrics["episodic_return"])[finished], 6.0)
    np.testing.assert_array_equal(np.asarray(metrics["episode_length"])[finished], 6.0)
    assert np.isnan(np.asarray(metrics["episodic_return"])[~finished]).all()


def test_observation_normalisation_applies_to_the_final_observation():
    env = envs.NormalizeObservation(PhaseClock(np.zeros(3), gamma=0.9, length=4))
    reset = jax.vmap(env.reset, axis_name=envs.ENV_AXIS)
    step = jax.jit(jax.vmap(env.step, axis_name=envs.ENV_AXIS))
    state, _ = reset(jax.random.split(jax.random.key(0), 2))
    action = jnp.zeros(2, jnp.int32)
    for t in range(4):  # the 4th step ends the episode: final phase 1, reset phase 0
        previous = state.moments
        state, obs, _, terminated, truncated, info = step(jax.random.split(jax.random.key(t), 2),
                                                          state, action)
    assert bool(truncated.all())
    assert not np.allclose(state.moments.mean, previous.mean)  # the statistics moved
    np.testing.assert_allclose(
        info["final_observation"], env.normalize(state.moments, jax.nn.one_hot(jnp.ones(2, int), 3)),
        rtol=1e-6)
    np.testing.assert_allclose(
        obs, env.normalize(state.moments, jax.nn.one_hot(jnp.zeros(2, int), 3)), rtol=1e-6)


# --- the loss: value and entropy terms, advantage normalisation ------------------------------

def _minibatch_and_network(n=32):
    config = pgjax.make_config("ppo", "CartPole-v1", num_envs=4, num_steps=8)
    network = make_network(config, make_env(config))
    params = network.init(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 5)
    obs = jax.random.normal(keys[0], (n, 4))
    policy = network.policy(params.actor, obs)
    action = policy.sample(keys[1])
    old_log_prob = policy.log_prob(action) + 0.3 * jax.random.normal(keys[2], (n,))
    old_value = network.value(params.critic, obs) + 0.5 * jax.random.normal(keys[3], (n,))
    advantage = 3.0 + 5.0 * jax.random.normal(keys[4], (n,))
    target = old_value + advantage
    return config, network, params, Batch(obs, action, old_log_prob, old_value, advantage, target)


def _ppo_drift(config):
    return lambda x: drifts.ppo(x.ratio, x.advantage, config.clip_epsilon)


def test_loss_is_policy_plus_weighted_value_minus_weighted_entropy():
    """total = −mean(r·Â − D) + c_v·½·mean(max((V − R)², (V_clip − R)²)) − c_H·mean H, each
    term computed here from the network's outputs."""
    config, network, params, batch = _minibatch_and_network()
    config = config.replace(vf_coef=0.7, ent_coef=0.3)
    total, (metrics, _) = mirror_loss(params, batch, network=network, config=config,
                                      drift=_ppo_drift(config), progress=0.0)
    policy = network.policy(params.actor, batch.obs)
    advantage = (batch.advantage - batch.advantage.mean()) / (batch.advantage.std() + 1e-8)
    ratio = np.exp(np.asarray(policy.log_prob(batch.action) - batch.old_log_prob, np.float64))
    adv = np.asarray(advantage, np.float64)
    pg = -np.mean(np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv))
    v = np.asarray(network.value(params.critic, batch.obs), np.float64)
    v_old, r = np.asarray(batch.old_value, np.float64), np.asarray(batch.target, np.float64)
    v_clip = v_old + np.clip(v - v_old, -0.2, 0.2)
    value = 0.5 * np.mean(np.maximum((v - r) ** 2, (v_clip - r) ** 2))
    entropy = float(np.mean(np.asarray(policy.entropy(), np.float64)))
    assert not np.isclose(value, 0.5 * np.mean((v - r) ** 2))  # the value clip is active
    np.testing.assert_allclose(float(metrics["policy_loss"]), pg, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["value_loss"]), value, rtol=1e-5)
    np.testing.assert_allclose(float(total), pg + 0.7 * value - 0.3 * entropy, rtol=1e-5)


def test_advantages_are_normalised_per_minibatch():
    """With normalisation on, the loss and its gradient are those of the minibatch's
    standardised advantages, and do not change under Â → aÂ + b (a > 0); off, they do."""
    config, network, params, batch = _minibatch_and_network()
    drift = _ppo_drift(config)

    def loss_and_grad(config, batch):
        return jax.value_and_grad(lambda p: mirror_loss(
            p, batch, network=network, config=config, drift=drift, progress=0.0)[0])(params)

    standardised = batch.replace(advantage=(batch.advantage - batch.advantage.mean())
                                 / (batch.advantage.std() + 1e-8))
    on = loss_and_grad(config, batch)
    by_hand = loss_and_grad(config.replace(normalize_advantages=False), standardised)
    affine = loss_and_grad(config, batch.replace(advantage=0.25 * batch.advantage - 7.0))
    raw = loss_and_grad(config.replace(normalize_advantages=False), batch)
    flat = [ravel_pytree(g)[0] for g in (on[1], by_hand[1], affine[1], raw[1])]
    np.testing.assert_allclose(on[0], by_hand[0], rtol=1e-5)
    np.testing.assert_allclose(flat[0], flat[1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(flat[0], flat[2], rtol=1e-3, atol=1e-5)
    assert float(jnp.abs(flat[3] - flat[0]).max()) > 0.1 * float(jnp.abs(flat[0]).max())


# --- the optimiser: global-norm clip and learning-rate schedule ------------------------------

def _adam_moments(opt_state):
    """The first moment ``mu`` of the Adam inside ``make_optimizer``'s chain."""
    return next(s.mu for s in jax.tree.leaves(
        opt_state, is_leaf=lambda s: hasattr(s, "mu")) if hasattr(s, "mu"))


def test_gradients_are_clipped_to_the_global_norm_before_adam():
    config = pgjax.make_config("ppo", "CartPole-v1", max_grad_norm=0.5)
    optimizer = make_optimizer(config)
    params = jnp.zeros(6)
    for norm in (100.0, 0.2):
        grad = norm * jnp.ones(6) / jnp.sqrt(6.0)
        _, state = optimizer.update(grad, optimizer.init(params), params)
        # After one step mu = (1 − β₁)·g_clipped, β₁ = 0.9.
        np.testing.assert_allclose(jnp.linalg.norm(_adam_moments(state)),
                                   0.1 * min(norm, 0.5), rtol=1e-5)


@pytest.mark.parametrize("anneal", [True, False])
def test_learning_rate_decays_linearly_per_update(anneal):
    """With a constant gradient every Adam step has size lr_k (m̂/√v̂ = 1); lr_k =
    lr·(1 − k/K) for every step of update k, or lr throughout without annealing."""
    config = pgjax.make_config("ppo", "CartPole-v1", num_envs=4, num_steps=8, num_epochs=2,
                               num_minibatches=2, total_timesteps=4 * 8 * 5,
                               learning_rate=1e-3, anneal_lr=anneal)
    optimizer = make_optimizer(config)
    per_update = config.num_epochs * config.num_minibatches
    params = jnp.zeros(3)

    def step(state, _):
        updates, state = optimizer.update(jnp.ones(3), state, params)
        return state, -updates[0]

    _, sizes = jax.lax.scan(step, optimizer.init(params), None,
                            length=config.num_updates * per_update)
    k = np.arange(config.num_updates * per_update) // per_update
    expected = 1e-3 * ((1.0 - k / config.num_updates) if anneal else np.ones_like(k))
    np.testing.assert_allclose(sizes, expected, rtol=1e-4)


# --- explained variance ----------------------------------------------------------------------

def test_explained_variance_against_its_limits_and_float64():
    y = jax.random.normal(jax.random.key(0), (200,))
    ev = losses.explained_variance
    assert float(ev(y, y)) == pytest.approx(1.0)
    assert float(ev(y + 3.0, y)) == pytest.approx(1.0, abs=1e-5)  # an offset explains it all
    assert float(ev(jnp.full_like(y, y.mean()), y)) == pytest.approx(0.0, abs=1e-6)
    assert float(ev(-y, y)) == pytest.approx(-3.0, rel=1e-5)  # Var(2y)/Var(y) = 4
    prediction = 0.8 * y + 0.3 * jax.random.normal(jax.random.key(1), (200,))
    y64, p64 = np.asarray(y, np.float64), np.asarray(prediction, np.float64)
    r2_of_best_linear_fit = np.corrcoef(y64, p64)[0, 1] ** 2
    expected = 1.0 - np.mean((y64 - p64 - (y64 - p64).mean()) ** 2) / np.mean(
        (y64 - y64.mean()) ** 2)
    assert float(ev(prediction, y)) == pytest.approx(expected, rel=1e-4)
    assert float(ev(prediction, y)) < r2_of_best_linear_fit
    assert float(ev(y[:5], jnp.zeros(5))) == 0.0  # constant targets: 0, not NaN


# --- TRPO: the full step reaches the edge of the KL ball -------------------------------------

@pytest.mark.slow
def test_trpo_full_step_realises_the_kl_radius():
    """On a tiny categorical policy, with little damping and CG run to convergence, the full
    step Δ = sqrt(2δ/xᵀFx)·x has ½ΔᵀFΔ ≈ δ, and the realised mean KL(π_old ‖ π) after the
    (accepted, un-backtracked) step is within 20% of δ."""
    network = make_actor_critic(envs.Box.make(-1.0, 1.0, (3,)), envs.Discrete(3), (5,), (4,))
    params = network.init(jax.random.key(2)).actor
    params["mlp"][-1] = {k: 3.0 * v for k, v in params["mlp"][-1].items()}  # not uniform
    obs = jax.random.normal(jax.random.key(4), (64, 3))
    policy = network.policy(params, obs)
    action = policy.sample(jax.random.key(5))
    advantage = jax.random.normal(jax.random.key(6), (64,))
    batch = Batch(obs, action, policy.log_prob(action), jnp.zeros(64), advantage, jnp.zeros(64))
    max_kl = 1e-3
    config = pgjax.make_config("trpo", "CartPole-v1", max_kl=max_kl, cg_damping=1e-3,
                               cg_iters=60, max_backtracks=1)
    new, metrics = jax.jit(functools.partial(trpo.policy_step, network=network,
                                             config=config))(params, batch)
    assert float(metrics["step_accepted"]) == 1.0 and int(metrics["line_search_steps"]) == 1
    kl = float(metrics["kl"])
    assert 0.8 * max_kl < kl < 1.2 * max_kl, kl
    # The quadratic model of the KL at the step is δ (damping included).
    flat, unravel = ravel_pytree(params)
    delta = ravel_pytree(new)[0] - flat
    hessian = jax.hessian(lambda t: policy.kl(network.policy(unravel(t), obs)).mean())(flat)
    model = 0.5 * (delta @ hessian @ delta + 1e-3 * delta @ delta)
    np.testing.assert_allclose(model, max_kl, rtol=2e-2)


@pytest.mark.slow
def test_trpo_steps_of_a_cartpole_run_reach_the_kl_radius():
    """Accepted full steps (no backtracking) realise a mean KL near δ on CartPole too (0.47δ to
    0.84δ here: the damping 0.1 shortens the step)."""
    config = pgjax.make_config("trpo", "CartPole-v1", num_envs=4, num_steps=64, num_epochs=2,
                               num_minibatches=2, total_timesteps=4 * 64 * 8)
    _, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(1))
    full = (np.asarray(metrics["step_accepted"]) == 1) & (
        np.asarray(metrics["line_search_steps"]) == 1)
    assert full.sum() >= 4
    kl = np.asarray(metrics["kl"])[full] / config.max_kl
    assert (kl > 0.3).all() and (kl <= config.accept_kl_ratio).all(), kl


def test_drift_inputs_reach_the_drift():
    """The drift sees the minibatch's ratio and (normalised) advantage."""
    config, network, params, batch = _minibatch_and_network(8)
    seen = {}

    def drift(x: DriftInputs):
        seen["ratio"], seen["advantage"] = x.ratio, x.advantage
        return jnp.zeros_like(x.ratio)

    mirror_loss(params, batch, network=network, config=config, drift=drift, progress=0.0)
    policy = network.policy(params.actor, batch.obs)
    np.testing.assert_allclose(seen["ratio"], jnp.exp(policy.log_prob(batch.action)
                                                      - batch.old_log_prob), rtol=1e-5)
    np.testing.assert_allclose(jnp.std(seen["advantage"]), 1.0, rtol=1e-4)
