"""FixPO: a KL penalty with a Lagrange multiplier β, then a fix-up phase that enforces the
trust region on every minibatch of the training batch.

Fixed-Point Policy Optimization (Zentner, Puri, Huang & Sukhatme, CoRL 2023, arXiv 2312.05405;
code uscresl/stabilized-rl ``src/fixpo_tianshou.py``). For each epoch:

* **primary phase**, for each minibatch, one optimiser step on::

      L_θ = −mean(r·Â) + c_v·L_V − c_H·H + β̄·mean_s KL(π_old(·|s) ‖ π_θ(·|s))   (β̄ = stop_grad β)

  then one Adam step for β on ``L_β = β·(ε_KL − C_β·max_s KL)`` (β clamped ≥ 0), so β rises
  while ``max KL > ε_KL / C_β``: the primary phase aims C_β times inside the bound;
* **fix-up phase**: passes over the minibatches, taking one step on ``β̄·mean KL`` alone (and
  one β step) on each minibatch whose ``max_s KL > ε_KL``, until a whole pass finds none or
  ``fixup_max_passes`` passes ran. When it stops on a clean pass, ``max_s KL ≤ ε_KL`` holds on
  the whole training batch; the metrics ``max_kl`` and ``kl_bound_held`` show it per update,
  and ``fixup_steps`` / ``gradient_steps`` the price.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from pgjax import advantages as advantages_lib
from pgjax import losses
from pgjax.updates import Batch, UpdateRule, shuffled_indices

#: Metrics FixPO reports on top of :data:`pgjax.trainer.METRICS`.
METRICS = ("beta", "fixup_steps", "max_kl", "gradient_steps", "kl_bound_held")


@struct.dataclass
class FixPOState:
    """FixPO's optimiser state: Adam over the raveled parameters, and β with its own Adam."""

    adam: Any
    beta: jax.Array
    beta_adam: Any


def beta_loss_grad(max_kl, eps_kl, target_coef):
    """``∂L_β/∂β`` of ``L_β = β·(ε_KL − C_β·max_s KL)`` (Zentner et al. 2023, Eq. 3): negative
    (β grows) while ``max KL > ε_KL / C_β``.

    Example:
      >>> from pgjax.fixpo import beta_loss_grad
      >>> float(beta_loss_grad(0.2, 0.5, 3.0)) < 0, float(beta_loss_grad(0.1, 0.5, 3.0)) > 0
      (True, True)
    """
    return eps_kl - target_coef * max_kl


def make_rule(config, network) -> UpdateRule:
    """FixPO as an :class:`pgjax.updates.UpdateRule`. One Adam (after the global-norm clip)
    for actor and critic; its step size is ``learning_rate·(1 − k/K)`` in update k when
    ``anneal_lr``, whatever the number of fix-up steps."""
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.scale_by_adam(eps=config.adam_eps))
    beta_optimizer = optax.adam(config.beta_lr)

    def init(params):
        beta = jnp.asarray(config.beta_init, jnp.float32)
        return FixPOState(optimizer.init(ravel_pytree(params)[0]), beta,
                          beta_optimizer.init(beta))

    def update(params, state: FixPOState, batch: Batch, key, progress):
        flat, unravel = ravel_pytree(params)
        old_policy = network.policy(params.actor, batch.obs)
        batch = batch.replace(old_policy=jax.tree.map(
            lambda x: jnp.broadcast_to(x, batch.old_log_prob.shape + x.shape[-1:]), old_policy))
        learning_rate = config.learning_rate * ((1.0 - progress) if config.anneal_lr else 1.0)
        order = shuffled_indices(key, config.num_epochs, config.batch_size).reshape(
            config.num_epochs, config.num_minibatches, config.minibatch_size)

        def kl_of(flat, mb):
            policy = network.policy(unravel(flat).actor, mb.obs)
            return mb.old_policy.kl(policy), policy

        def primary_loss(flat, mb, beta):
            kl, policy = kl_of(flat, mb)
            advantage = mb.advantage
            if config.normalize_advantages:
                advantage = advantages_lib.normalize(advantage)
            pg_loss, metrics = losses.policy_loss(
                policy.log_prob(mb.action), mb.old_log_prob, advantage,
                lambda r, a: jnp.zeros_like(r), clip_epsilon=config.clip_epsilon)
            v_loss, v_metrics = losses.value_loss(
                network.value(unravel(flat).critic, mb.obs), mb.old_value, mb.target,
                clip_epsilon=config.clip_epsilon if config.clip_value_loss else None)
            ent_loss, ent_metrics = losses.entropy_loss(policy.entropy())
            penalty = beta * kl.mean()
            total = pg_loss + config.vf_coef * v_loss + config.ent_coef * ent_loss + penalty
            return total, ({**metrics, **v_metrics, **ent_metrics, "drift": penalty}, kl.max())

        def kl_loss(flat, mb, beta):
            kl, _ = kl_of(flat, mb)
            return beta * kl.mean()

        def apply(flat, adam, grads):
            updates, adam = optimizer.update(grads, adam, flat)
            return flat - learning_rate * updates, adam

        def beta_step(beta, beta_adam, max_kl):
            grad = beta_loss_grad(max_kl, config.eps_kl, config.beta_target_coef)
            updates, beta_adam = beta_optimizer.update(grad, beta_adam)
            return jnp.maximum(beta + updates, 0.0), beta_adam

        def primary_step(carry, mb):
            flat, adam, beta, beta_adam = carry
            grads, (metrics, max_kl) = jax.grad(primary_loss, has_aux=True)(flat, mb, beta)
            flat, adam = apply(flat, adam, grads)
            beta, beta_adam = beta_step(beta, beta_adam, max_kl)
            return (flat, adam, beta, beta_adam), {**metrics, "grad_norm": jnp.linalg.norm(grads)}

        def fixup_step(carry, mb):
            flat, adam, beta, beta_adam, steps, violated = carry
            violates = kl_of(flat, mb)[0].max() > config.eps_kl

            def step(args):
                flat, adam, beta, beta_adam = args
                flat, adam = apply(flat, adam, jax.grad(kl_loss)(flat, mb, beta))
                max_kl = kl_of(flat, mb)[0].max()
                return (flat, adam, *beta_step(beta, beta_adam, max_kl))

            flat, adam, beta, beta_adam = jax.lax.cond(
                violates, step, lambda args: args, (flat, adam, beta, beta_adam))
            return (flat, adam, beta, beta_adam, steps + violates,
                    violated | violates), None

        def fixup(flat, adam, beta, beta_adam, steps, minibatches):
            """Passes until one finds no violating minibatch (or ``fixup_max_passes``)."""
            def fixup_pass(carry):
                *state, steps, _, passes = carry
                (*state, steps, violated), _ = jax.lax.scan(
                    fixup_step, (*state, steps, jnp.zeros((), bool)), minibatches)
                return (*state, steps, violated, passes + 1)

            *state, steps, _, _ = jax.lax.while_loop(
                lambda c: c[-2] & (c[-1] < config.fixup_max_passes), fixup_pass,
                (flat, adam, beta, beta_adam, steps, jnp.ones((), bool),
                 jnp.zeros((), jnp.int32)))
            return (*state, steps)

        def epoch(carry, idx):
            flat, adam, beta, beta_adam, steps = carry
            minibatches = jax.tree.map(lambda x: x[idx], batch)
            (flat, adam, beta, beta_adam), metrics = jax.lax.scan(
                primary_step, (flat, adam, beta, beta_adam), minibatches)
            return fixup(flat, adam, beta, beta_adam, steps, minibatches), metrics

        (flat, adam, beta, beta_adam, fixup_steps), metrics = jax.lax.scan(
            epoch, (flat, state.adam, state.beta, state.beta_adam, jnp.zeros((), jnp.int32)),
            order)
        params = unravel(flat)
        max_kl = old_policy.kl(network.policy(params.actor, batch.obs)).max()
        return params, FixPOState(adam, beta, beta_adam), {
            **jax.tree.map(jnp.mean, metrics),
            "beta": beta, "fixup_steps": fixup_steps.astype(jnp.float32), "max_kl": max_kl,
            "gradient_steps": jnp.float32(config.num_epochs * config.num_minibatches)
            + fixup_steps, "kl_bound_held": (max_kl <= config.eps_kl).astype(jnp.float32),
        }

    return UpdateRule(init, update)
