"""Peer benchmark: rejax 0.1.3 PPO on gymnax 1.0.1 CartPole-v1.

Install with ``pip install -e ".[bench]"`` (rejax 0.1.3 + distrax; no pinned package of pgjax's
stack changes). Used by ``benchmarks/speed.py``; ``python benchmarks/rejax_peer.py --seed 0``
runs it alone.

Settings (fixed): CartPole-v1, 16 envs x 128 steps (2048 steps/update),
8 epochs, 8 minibatches, lr 5e-4 (constant; rejax has no annealing), tanh MLP
64x64 for actor and critic (separate networks), gamma 0.99, GAE lambda 0.95,
clip eps 0.2, entropy coef 0.01, value coef 0.5, "max_grad_norm" 0.5 (NB: rejax
0.1.3 implements this as ``optax.clip(0.5)``, i.e. element-wise gradient value
clipping, not global-norm clipping), no observation/reward normalisation,
524,288 total steps.

Evaluation: ``eval_freq = total_timesteps`` and ``skip_initial_evaluation =
True``, so rejax performs exactly one evaluation, after the last update. That
evaluation is part of ``PPO.train`` and therefore part of the compiled program
and of the measured train time.

final_return: the mean, over rejax's 128 evaluation episodes, of the
undiscounted episodic return from rejax's own (single, end-of-training)
evaluation, i.e. ``evaluation[1][-1].mean()`` where ``evaluation = (lengths,
returns)`` is the second output of ``PPO.train``. rejax's evaluation policy is
*stochastic* (it samples from the categorical policy via ``actor.act``), each
episode runs until done or 500 steps, seeded from the final train-state rng.

Timing: compile_seconds = wall time of ``jax.jit(algo.train).lower(rng).compile()``;
train_seconds = wall time of calling the compiled executable and
``block_until_ready`` on its outputs (compile excluded);
steps_per_second = total_timesteps / train_seconds.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


class GymnaxV1ToRejaxAdapter:
    """Present a gymnax 1.x env with the old gymnax 0.0.x step API rejax expects.

    gymnax 1.x ``step`` returns ``(obs, state, reward, terminated, truncated,
    info)``; rejax 0.1.3 unpacks ``(obs, state, reward, done, info)``. We return
    ``done = terminated | truncated`` (auto-reset has already been applied by
    gymnax when either is true, exactly as in old gymnax). Everything else
    (reset, action_space, observation_space, default_params, num_actions, name,
    ...) is forwarded to the wrapped env.

    Consequence: rejax's GAE bootstraps with 0 on time-limit truncation (as it
    always did with old gymnax, whose ``done`` also included the time limit).
    """

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        # Guard against recursion while copy.deepcopy (used by PPO.create)
        # rebuilds the object before ``self.env`` exists.
        if name == "env" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def default_params(self):
        return self.env.default_params

    @property
    def num_actions(self):
        return self.env.num_actions

    @property
    def name(self):
        return self.env.name

    def action_space(self, params=None):
        return self.env.action_space(params)

    def observation_space(self, params):
        return self.env.observation_space(params)

    def reset(self, key, params=None):
        return self.env.reset(key, params)

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        return obs, state, reward, done, info


def make_rejax_ppo(total_timesteps: int = 524288):
    import gymnax
    from rejax import PPO

    env, env_params = gymnax.make("CartPole-v1")
    env = GymnaxV1ToRejaxAdapter(env)
    config = dict(
        env=env,
        env_params=env_params,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
        num_envs=16,
        num_steps=128,
        num_epochs=8,
        num_minibatches=8,
        learning_rate=5e-4,
        max_grad_norm=0.5,
        total_timesteps=total_timesteps,
        # One evaluation only, at the very end of training.
        eval_freq=total_timesteps,
        skip_initial_evaluation=True,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        normalize_observations=False,
        normalize_rewards=False,
    )
    return PPO.create(**config)


def run_rejax_ppo(seed: int, total_timesteps: int = 524288, seeds: int = 1) -> dict:
    """Train rejax PPO once (``seeds > 1``: vmapped over seeds, as rejax's README does); see the
    module docstring for what is measured."""
    iteration_steps = 16 * 128
    if total_timesteps % iteration_steps:
        raise ValueError(f"total_timesteps must be a multiple of {iteration_steps}")
    algo = make_rejax_ppo(total_timesteps)
    rng = jax.random.PRNGKey(seed)
    train = algo.train
    if seeds > 1:
        rng = jax.random.split(rng, seeds)
        train = jax.vmap(algo.train)

    t0 = time.perf_counter()
    compiled = jax.jit(train).lower(rng).compile()
    compile_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    train_state, evaluation = compiled(rng)
    jax.block_until_ready((train_state, evaluation))
    train_seconds = time.perf_counter() - t0

    _lengths, returns = evaluation  # each shape (num_evals=1, 128)
    assert int(jnp.max(train_state.global_step)) == total_timesteps, train_state.global_step
    final = returns[:, -1] if seeds > 1 else returns[-1][None]
    return {
        "compile_seconds": float(compile_seconds),
        "train_seconds": float(train_seconds),
        "steps_per_second": float(seeds * total_timesteps / train_seconds),
        "final_return": [float(x) for x in jnp.mean(final, axis=-1)],
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--total-timesteps", type=int, default=524288)
    args = parser.parse_args()
    print(json.dumps(run_rejax_ppo(args.seed, args.total_timesteps)))
