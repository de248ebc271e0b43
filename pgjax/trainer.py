"""``make_train(config) -> train(key)``: a whole training run as one pure, vmappable function.

``train`` is ``lax.scan`` of ``update`` over ``config.num_updates`` from ``init(key)``; the
host engine (:mod:`pgjax.engine`) calls the same ``init`` and ``update`` in chunks, so both
give identical results.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from pgjax import envs as envs_lib
from pgjax.advantages import gae
from pgjax.config import ALGORITHMS, Config, resolve_defaults
from pgjax.devices import warn_if_cpu_scheduler_on
from pgjax.faults import first_nonfinite
from pgjax.keys import split_key, typed_key
from pgjax.losses import explained_variance
from pgjax.networks import make_actor_critic
from pgjax.recurrent import Memory, Sequences, make_recurrent_actor_critic
from pgjax.rollout import recurrent_rollout, rollout
from pgjax.updates import Batch, UpdateRule

#: Per-update metrics every algorithm reports, each a scalar per update (``[num_updates]``
#: after ``train``); NaN where one does not apply (``kl_new_old`` unless the drift reads the
#: KL). An algorithm's update may add its own, declared in its ``Algorithm.metrics`` (TRPO's,
#: FixPO's): :func:`metric_names`.
METRICS = (
    "env_steps", "episodic_return", "episode_length", "episodes", "policy_loss", "value_loss",
    "entropy", "approx_kl", "clipfrac", "ratio_deviation", "drift", "explained_variance",
    "grad_norm", "kl_new_old", "nonfinite",
)

@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any  #: the update's optimiser state (Adam over raveled parameters; FixPO: + β)
    env_state: Any
    obs: jax.Array  #: current observation of every env, ``[num_envs, ...]``
    key: jax.Array
    update_step: jax.Array
    #: a recurrent policy's cell states before ``obs`` (:class:`pgjax.recurrent.Memory`,
    #: ``[num_envs, memory_size]``); None for feed-forward policies
    memory: Any = None


class Trainer(NamedTuple):
    init: Callable[[jax.Array], TrainState]
    update: Callable[[TrainState], tuple[TrainState, dict]]
    num_updates: int
    metrics: tuple = METRICS  #: the names ``update`` reports, :func:`metric_names`


def make_env(config: Config):
    """The training environment: ``envs.make`` with episode statistics (of the raw rewards),
    then observation and reward normalisation as the config says."""
    config = resolve_defaults(config)
    env = envs_lib.EpisodeStats(envs_lib.make(config.env, **dict(config.env_kwargs)))
    if config.normalize_observations:
        env = envs_lib.NormalizeObservation(env)
    if config.normalize_rewards:
        env = envs_lib.NormalizeReward(env, config.gamma)
    return env


def make_network(config: Config, env):
    """The actor-critic the config describes, for ``env``'s spaces (recurrent with
    ``memory="gru"``); an env declaring ``policy_observation_size`` (a Playground task with
    ``critic_observation_key``) gets an actor that reads only those leading features."""
    config = resolve_defaults(config)
    actor_features = getattr(env, "policy_observation_size", None)
    if config.recurrent:
        if actor_features is not None:
            raise ValueError(f"memory: {config.env_id} gives its critic a privileged observation; "
                             "memory='gru' does not support an asymmetric actor-critic yet")
        return make_recurrent_actor_critic(
            env.observation_space, env.action_space, config.actor_hidden, config.critic_hidden,
            memory_size=config.memory_size, squash=config.action_head == "tanh",
            activation=config.activation)
    return make_actor_critic(env.observation_space, env.action_space, config.actor_hidden,
                             config.critic_hidden, torso=config.torso,
                             conv_channels=config.conv_channels,
                             squash=config.action_head == "tanh",
                             activation=config.activation, actor_features=actor_features)


def episode_metrics(transitions):
    """Masked means over the episodes that ended in this rollout (NaN when none did): return,
    length and what the env reports of its episodes (``Transition.episode_info``)."""
    done = transitions.done.astype(jnp.float32)
    count = done.sum()
    safe = jnp.maximum(count, 1.0)
    nan = jnp.float32(jnp.nan)
    per_episode = {"episodic_return": transitions.episode_return,
                   "episode_length": transitions.episode_length, **transitions.episode_info}
    return {**{name: jnp.where(count > 0, (value * done).sum() / safe, nan)
               for name, value in per_episode.items()},
            "episodes": count}


def make_update_rule(config: Config, network) -> UpdateRule:
    """The algorithm's update (:meth:`pgjax.algorithms.Algorithm.update_rule`): its own, or
    the shared first-order Mirror-Learning update with its drift."""
    return ALGORITHMS[config.algo].update_rule(config, network)


def metric_names(config: Config) -> tuple[str, ...]:
    """What ``update`` reports for ``config``'s algorithm: :data:`METRICS`, then the names
    its update declares (TRPO: ``kl``, ``line_search_steps``, ...; FixPO: ``beta``, ...), then
    what the env reports of its episodes (:func:`pgjax.envs.episode_info`; Craftax:
    ``achievements``).

    Example:
      >>> import pgjax
      >>> from pgjax.trainer import metric_names
      >>> metric_names(pgjax.make_config("fixpo", "CartPole-v1"))[len(pgjax.METRICS):]
      ('beta', 'fixup_steps', 'max_kl', 'gradient_steps', 'kl_bound_held')
    """
    return METRICS + ALGORITHMS[config.algo].metrics + envs_lib.family_episode_info(config.env)


def check_reported(algo: str, reported, names) -> None:
    """An update reports the shared metrics it computes and exactly the names its algorithm
    declares on top of them; anything else is a bug in the update, named here."""
    declared = names[len(METRICS):]
    undeclared = sorted(set(reported) - set(names))
    missing = [n for n in declared if n not in reported]
    if undeclared or missing:
        raise ValueError(f"{algo}: its update reports {', '.join(undeclared) or 'nothing'} "
                         f"it did not declare and misses declared {', '.join(missing) or 'none'}"
                         f" (declare metrics=(...) on its Algorithm)")


def make_trainer(config: Config) -> Trainer:
    """``init(key) -> TrainState`` and ``update(state) -> (state, metrics)`` for ``config``;
    ``key`` is ``jax.random.key(seed)`` or ``jax.random.PRNGKey(seed)`` (the same run), the
    state's key typed."""
    env = make_env(config)
    warn_if_cpu_scheduler_on()
    network = make_network(config, env)
    rule = make_update_rule(config, network)
    names = metric_names(config)

    def init(key):
        # Every key in one split (each RNG call site is a loop of its own on CPU to compile).
        keys = jax.random.split(typed_key(key), 2 + config.num_envs)
        key_params, key = keys[0], keys[1]
        env_state, obs = jax.vmap(env.reset, axis_name=envs_lib.ENV_AXIS)(keys[2:])
        params = network.init(key_params)
        memory = network.initial_memory((config.num_envs,)) if config.recurrent else None
        return TrainState(params, rule.init(params), env_state, obs, key,
                          jnp.zeros((), jnp.int32), memory)

    def collect(state, key_rollout):
        """Rollout, values and GAE: ``(env_state, obs, memory, traj, batch)``; the batch is
        flat samples, or whole env sequences ``[num_envs, num_steps]`` with memory.
        ``key_rollout``: a key, or the rollout's keys (:func:`pgjax.rollout.rollout_keys`)."""
        if config.recurrent:
            return collect_sequences(config, env, network, state, key_rollout)
        env_state, obs, traj = rollout(env, network, state.params.actor, state.env_state,
                                       state.obs, key_rollout, config.num_steps)
        # Values of s_t and of the true s'_t (final obs at episode ends), in one pass.
        values, next_values = jnp.split(
            network.value(state.params.critic, jnp.concatenate([traj.obs, traj.next_obs])), 2)
        advantages, targets = advantages_and_targets(config, traj, values, next_values)
        batch = jax.tree.map(
            lambda x: x.reshape((config.batch_size,) + x.shape[2:]),
            Batch(traj.obs, traj.action, traj.log_prob, values, advantages, targets),
        )
        return env_state, obs, None, traj, batch

    def update(state):
        # The next state's key, the update rule's and the rollout's, in one split.
        keys = split_key(state.key, 2 + config.num_steps * (config.num_envs + 1))
        key, key_update = keys[0], keys[1]
        key_rollout = keys[2:].reshape(config.num_steps, config.num_envs + 1)
        env_state, obs, memory, traj, batch = collect(state, key_rollout)
        params, opt_state, update_metrics = rule.update(
            state.params, state.opt_state, batch, key_update,
            state.update_step / config.num_updates)
        check_reported(config.algo, update_metrics, METRICS + ALGORITHMS[config.algo].metrics)
        # Numerical faults: the rollout's data, the update's losses and gradients, the new
        # parameters (the host engine stops on the first; skip_nonfinite keeps the old parameters).
        nonfinite = first_nonfinite({"reward": traj.reward, "observation": traj.obs,
                                     **update_metrics, "params": params})
        if config.skip_nonfinite:
            params, opt_state = jax.tree.map(lambda old, new: jnp.where(nonfinite > 0, old, new),
                                             (state.params, state.opt_state), (params, opt_state))
        metrics = {
            "env_steps": (state.update_step + 1) * config.batch_size,
            "nonfinite": nonfinite,
            **episode_metrics(traj),
            **update_metrics,
            "explained_variance": explained_variance(batch.old_value, batch.target),
        }
        state = TrainState(params, opt_state, env_state, obs, key, state.update_step + 1, memory)
        # NaN for what this algorithm does not compute (kl_new_old unless the drift reads it).
        return state, {k: metrics.get(k, jnp.float32(jnp.nan)) for k in names}

    return Trainer(init, update, config.num_updates, names)


def advantages_and_targets(config: Config, traj, values, next_values):
    """GAE over a rollout (time-major ``[num_steps, num_envs]``): bootstrap from ``V(s'_t)``
    unless ``s'_t`` is terminal, cut the trace at every episode end (:func:`pgjax.gae`)."""
    return gae(traj.reward * config.reward_scale, values, next_values, traj.terminated,
               traj.done, gamma=config.gamma, lambda_=config.gae_lambda)


def collect_sequences(config: Config, env, network, state: TrainState, key):
    """A recurrent policy's rollout as whole env sequences: the batch's ``obs`` is
    :class:`pgjax.recurrent.Sequences` (observations, the episode starts inside each
    sequence, the cell states at the rollout's start), every other field ``[num_envs,
    num_steps]``, so that re-running the cells from the stored start reproduces the rollout's
    log-probabilities exactly (truncated BPTT over ``num_steps``)."""
    env_state, obs, actor_memory, traj = recurrent_rollout(
        env, network, state.params.actor, state.env_state, state.obs, state.memory.actor, key,
        config.num_steps)
    # x_t starts an episode where step t − 1 ended one (the start state covers t = 0).
    resets = jnp.concatenate([jnp.zeros_like(traj.done[:1]), traj.done[:-1]])
    batch_major = functools.partial(jnp.swapaxes, axis1=0, axis2=1)
    sequences = Sequences(batch_major(traj.obs), batch_major(resets), state.memory)
    values, next_values, critic_memory = network.rollout_values(
        state.params.critic, sequences, batch_major(traj.next_obs), traj.done[-1])
    advantages, targets = advantages_and_targets(config, traj, batch_major(values),
                                                 batch_major(next_values))
    batch = Batch(sequences, batch_major(traj.action), batch_major(traj.log_prob), values,
                  batch_major(advantages), batch_major(targets))
    return env_state, obs, Memory(actor_memory, critic_memory), traj, batch


def make_train(config: Config):
    """A pure ``train(key) -> (final_state, metrics)`` for ``config``.

    ``metrics`` maps each name in :func:`metric_names` (:data:`METRICS` and the algorithm's
    own) to an array ``[num_updates]``. ``train`` can be jitted, and vmapped over keys (seeds)
    and over stacked configs (see :func:`pgjax.stack_configs`). ``key`` is
    ``jax.random.key(seed)`` or a legacy ``jax.random.PRNGKey(seed)``: the same run.

    Example:
      >>> import jax, pgjax
      >>> config = pgjax.make_config("ppo", "CartPole-v1", total_timesteps=4096)
      >>> state, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(0))
      >>> metrics["episodic_return"].shape
      (2,)
    """
    trainer = make_trainer(config)

    def train(key):
        state = trainer.init(key)
        return jax.lax.scan(lambda s, _: trainer.update(s), state, None,
                            length=trainer.num_updates)

    return train
