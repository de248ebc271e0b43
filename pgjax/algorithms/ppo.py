"""PPO-clip (Schulman, Wolski, Dhariwal, Radford & Klimov 2017, arXiv 1707.06347) as a drift.

Maximise ``E[r·Â − D]`` with ``D = relu((r − clip(r, 1 ± ε))·Â)`` (:func:`pgjax.drifts.ppo`):
``r·Â − D = min(r·Â, clip(r, 1 ± ε)·Â)``, PPO's clipped surrogate (Mirror Learning, Kuba et
al. 2022, arXiv 2201.02373). The update is the shared first-order one
(:func:`pgjax.updates.mirror_update`): ``num_epochs`` passes of ``num_minibatches``
minibatches of Adam on ``−(r·Â − D) + c_v·L_V − c_H·H``, ε being the run's ``clip_epsilon``.
PPO has no hyperparameter of its own; its per-env presets are shared by the other drifts.

Example:
  >>> import pgjax
  >>> config = pgjax.make_config("ppo", "Pendulum-v1")
  >>> config.num_envs, config.num_steps, config.learning_rate
  (16, 256, 0.001)
"""

from pgjax import drifts
from pgjax.algorithms.base import Algorithm

#: Small recurrent settings (memory_size applies with memory="gru"): a 64-wide GRU, 4 epochs
#: of 4 minibatches.
SMALL_MEMORY = dict(memory_size=64, num_epochs=4, num_minibatches=4)
STATELESS_CARTPOLE = {**SMALL_MEMORY, "total_timesteps": 2_000_000}

#: Settings the PPO-family drifts share per env (PPO's tuned presets).
PRESETS = {
    "CartPole-v1": {},
    # CartPole without the velocities, for recurrent policies (memory="gru"): a 64-wide GRU
    # (a third of the 128-wide one's update time, and enough) and 4 epochs × 4 minibatches of
    # 4 env sequences (PureJaxRL ppo_rnn's 4 × 4; 8 × 8 cost 9× as much per update), 2M steps.
    "pomdp/StatelessCartPole-v1": STATELESS_CARTPOLE,
    # bsuite's memory test (the context bit seen at the first step, asked for at the last):
    # the same small GRU, 500k steps.
    "MemoryChain-bsuite": {**SMALL_MEMORY, "total_timesteps": 500_000},
    "Pendulum-v1": dict(
        num_envs=16, num_steps=256, num_epochs=10, num_minibatches=8,
        learning_rate=1e-3, gamma=0.95, ent_coef=0.0,
        max_grad_norm=0.5, total_timesteps=1_000_000,
    ),
    # Brax locomotion: the MuJoCo PPO settings (batch 2048, 10 epochs of 64-sample minibatches,
    # lr 3e-4, no entropy bonus; Schulman et al. 2017 / the 37 details) over 32 envs.
    **{f"brax/{name}": dict(
        num_envs=32, num_steps=64, num_epochs=10, num_minibatches=32, learning_rate=3e-4,
        ent_coef=0.0, total_timesteps=3_000_000,
    ) for name in ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "pusher",
                   "reacher", "swimmer", "walker2d")},
    # Craftax-Classic: the Craftax baseline PPO's update (64 steps, 4 epochs of 8 minibatches,
    # lr 2e-4, GAE λ 0.8, gradient clip 1.0; its 1024 envs and 512-wide nets are for a GPU)
    # over 64 envs and pgjax's 64-wide nets, 1M steps.
    **{f"craftax/{name}": dict(
        num_envs=64, num_steps=64, num_epochs=4, num_minibatches=8, learning_rate=2e-4,
        gae_lambda=0.8, max_grad_norm=1.0, total_timesteps=1_000_000,
    ) for name in ("Craftax-Classic-Symbolic-v1", "Craftax-Classic-Pixels-v1")},
}

#: MuJoCo Playground's DM Control Suite tasks (``mujoco_playground.registry``, playground 0.2).
PLAYGROUND_DM_CONTROL = (
    "AcrobotSwingup", "AcrobotSwingupSparse", "BallInCup", "CartpoleBalance",
    "CartpoleBalanceSparse", "CartpoleSwingup", "CartpoleSwingupSparse", "CheetahRun",
    "FingerSpin", "FingerTurnEasy", "FingerTurnHard", "FishSwim", "HopperHop", "HopperStand",
    "HumanoidStand", "HumanoidWalk", "HumanoidRun", "PendulumSwingup", "PointMass",
    "ReacherEasy", "ReacherHard", "SwimmerSwimmer6", "WalkerRun", "WalkerStand", "WalkerWalk")


def brax_ppo_playground(task: str) -> dict:
    """Playground's tuned Brax-PPO settings for a DM Control task
    (``mujoco_playground/config/dm_control_suite_params.py``, ``brax_ppo_config``, with Brax
    0.14's PPO defaults and networks), as pgjax PPO settings — the ``"playground"`` preset,
    sized for a GPU:

    * 2048 envs, unroll 30 → ``num_envs=2048, num_steps=30``. Brax collects 16 such unrolls
      (``batch_size`` 1024 × 32 minibatches of 30 steps = 983,040 samples) and then takes 16
      epochs of 32 minibatches; pgjax updates after each 61,440-step rollout with 16 epochs of
      2 minibatches: the same 30,720-sample minibatch and the same 512 SGD steps per 983,040
      env steps, the data 16× fresher.
    * lr 1e-3 constant, Adam ε 1e-8 (optax's default), no gradient clip (Brax's
      ``max_grad_norm=None``: 1e9 here), ε 0.3, λ 0.95, entropy 0.01, value coefficient 0.5
      without value clipping, per-minibatch advantage normalisation (all Brax's).
    * γ 0.995 (0.95 for BallInCup and FingerSpin), rewards × 10 (``reward_scaling``), running
      observation normalisation, no reward normalisation.
    * Brax's networks: a 4 × 32 swish policy, a 5 × 256 swish value function, a tanh-squashed
      Gaussian (``action_head="tanh"``; Brax's scale is state-dependent, softplus + 0.001,
      pgjax's log-std a free parameter; Brax inits lecun-uniform, pgjax orthogonal).
    * 60M env steps (100M for the Acrobot and Swimmer tasks and WalkerRun).

    Brax masks a time-limit step out of the loss (no bootstrap at truncation); pgjax
    bootstraps from the true final observation. Playground's config also asks for action repeat
    4 on ``"PendulumSwingUp"``, a name no task has (the task is ``PendulumSwingup``), so its
    published settings use 1: so does this preset."""
    long_run = task.startswith(("AcrobotSwingup", "Swimmer")) or task == "WalkerRun"
    return dict(
        num_envs=2048, num_steps=30, num_epochs=16, num_minibatches=2,
        learning_rate=1e-3, anneal_lr=False, adam_eps=1e-8, max_grad_norm=1e9,
        clip_epsilon=0.3, gae_lambda=0.95, ent_coef=0.01, vf_coef=0.5, clip_value_loss=False,
        gamma=0.95 if task in ("BallInCup", "FingerSpin") else 0.995, reward_scale=10.0,
        normalize_observations=True, normalize_rewards=False,
        actor_hidden=(32,) * 4, critic_hidden=(256,) * 5, activation="swish",
        action_head="tanh", total_timesteps=100_000_000 if long_run else 60_000_000)


#: Presets by name (``make_config(..., preset=NAME)``, ``pgjax train --preset NAME``): name →
#: env id → overrides, shared by the PPO-family drifts.
NAMED_PRESETS = {"playground": {f"playground/{task}": brax_ppo_playground(task)
                                for task in PLAYGROUND_DM_CONTROL}}

#: Pendulum for TRPO and FixPO: PPO's rollout shape and γ, at most 2M steps.
PENDULUM_TRUST_REGION = dict(num_envs=16, num_steps=256, gamma=0.95, total_timesteps=2_000_000)


def drift(config, x):
    """relu((r − clip(r, 1 ± ε))·Â), ε = ``config.clip_epsilon``."""
    return drifts.ppo(x.ratio, x.advantage, config.clip_epsilon)


PPO = Algorithm(
    name="ppo",
    drift=drift,
    presets=PRESETS,
    named_presets=NAMED_PRESETS,
    description="PPO-clip (Schulman et al. 2017) as the drift relu((r − clip(r))·Â)",
)
