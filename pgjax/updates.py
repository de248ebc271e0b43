"""The first-order Mirror-Learning update, written once for every drift.

Maximise ``E[r·Â − D(r, Â)]`` (Kuba et al. 2022, arXiv 2201.02373) by ``num_epochs`` passes of
``num_minibatches`` shuffled minibatches with one optimiser for actor and critic; the loss is
``−(r·Â − D) + c_v·L_V − c_H·H``. PPO is the drift :func:`pgjax.drifts.ppo`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from pgjax import advantages as advantages_lib
from pgjax import losses


@struct.dataclass
class Batch:
    """Flat ``[batch_size, ...]`` training data from one rollout."""

    obs: jax.Array
    action: jax.Array
    old_log_prob: jax.Array
    old_value: jax.Array
    advantage: jax.Array
    target: jax.Array  #: value target (GAE return)


def mirror_loss(params, minibatch: Batch, *, network, config, drift, drift_kwargs):
    """Total loss of one minibatch and its metrics."""
    policy = network.policy(params.actor, minibatch.obs)
    advantage = minibatch.advantage
    if config.normalize_advantages:
        advantage = advantages_lib.normalize(advantage)
    pg_loss, metrics = losses.policy_loss(
        policy.log_prob(minibatch.action), minibatch.old_log_prob, advantage, drift,
        drift_kwargs=drift_kwargs, clip_epsilon=config.clip_epsilon,
    )
    values = network.value(params.critic, minibatch.obs)
    v_loss, v_metrics = losses.value_loss(
        values, minibatch.old_value, minibatch.target,
        clip_epsilon=config.clip_epsilon if config.clip_value_loss else None,
    )
    entropy = policy.entropy().mean()
    total = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
    return total, {**metrics, **v_metrics, "entropy": entropy}


def mirror_update(params, opt_state, batch: Batch, key, *, network, optimizer, config,
                  drift: Callable, drift_kwargs: dict):
    """``num_epochs × num_minibatches`` gradient steps; returns ``(params, opt_state, metrics)``
    with the metrics averaged over all steps."""
    num_steps = config.num_epochs * config.num_minibatches
    permutations = jax.vmap(lambda k: jax.random.permutation(k, config.batch_size))(
        jax.random.split(key, config.num_epochs)
    )
    minibatches = jax.tree.map(
        lambda x: x[permutations.reshape(-1)].reshape(
            (num_steps, config.minibatch_size) + x.shape[1:]),
        batch,
    )
    grad_fn = jax.grad(mirror_loss, has_aux=True)

    def sgd_step(carry, minibatch):
        params, opt_state = carry
        grads, metrics = grad_fn(params, minibatch, network=network, config=config,
                                 drift=drift, drift_kwargs=drift_kwargs)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), {**metrics, "grad_norm": optax.tree.norm(grads)}

    (params, opt_state), metrics = jax.lax.scan(sgd_step, (params, opt_state), minibatches)
    return params, opt_state, jax.tree.map(jnp.mean, metrics)
