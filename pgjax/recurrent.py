"""A GRU cell as pure functions, and its scan over a sequence with episode resets — the memory
that recurrent policies are built from (issue: recurrent policies for every algorithm).

The cell (Cho et al. 2014, arXiv 1406.1078; in the form of ``flax.linen.GRUCell``, with the
reset gate applied after the recurrent matmul, as cuDNN and flax do)::

    r  = σ(W_ir x + b_ir + W_hr h)
    z  = σ(W_iz x + b_iz + W_hz h)
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

Over a rollout, the hidden state is reset to zeros at every episode start: ``resets[t]`` is the
``done`` of step ``t − 1`` (true when the observation ``x_t`` is the first of a new episode),
exactly as PureJaxRL's ``ppo_rnn`` resets its ``ScannedRNN``. :func:`gru_scan` applies the
resets inside the sequence, so an update can re-run the cell over each environment's
``num_steps`` from the hidden state stored at the start of the rollout (truncated BPTT).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.distributions import Categorical, DiagGaussian, TanhGaussian
from pgjax.envs import Box
from pgjax.networks import (ACTIVATIONS, ActorCriticParams, mlp_apply, mlp_init, orthogonal,
                            policy_head)

__all__ = ["Memory", "RecurrentActorCritic", "Sequences", "gru_init", "gru_scan", "gru_step",
           "make_recurrent_actor_critic", "reset_state"]


def gru_init(key, num_inputs: int, num_hidden: int) -> dict:
    """GRU parameters: ``w_i`` ``[inputs, 3·hidden]`` and ``w_h`` ``[hidden, 3·hidden]`` (gates
    r, z, n side by side), each gate block orthogonal (gain 1); biases ``b_i``, ``b_hn`` zero."""
    k_i, k_h = jax.random.split(key)
    normal_i = jax.random.normal(k_i, (3, num_inputs, num_hidden))
    normal_h = jax.random.normal(k_h, (3, num_hidden, num_hidden))
    return {
        "w_i": jnp.concatenate([orthogonal(n) for n in normal_i], axis=1),
        "w_h": jnp.concatenate([orthogonal(n) for n in normal_h], axis=1),
        "b_i": jnp.zeros((3 * num_hidden,), jnp.float32),
        "b_hn": jnp.zeros((num_hidden,), jnp.float32),
    }


def gru_step(params: dict, h, x):
    """One GRU step: the next hidden state ``h'`` (``[..., hidden]``) from ``h`` and the input
    ``x`` (``[..., inputs]``), by the equations of the module docstring."""
    i_r, i_z, i_n = jnp.split(x @ params["w_i"] + params["b_i"], 3, axis=-1)
    h_r, h_z, h_n = jnp.split(h @ params["w_h"], 3, axis=-1)
    r = jax.nn.sigmoid(i_r + h_r)
    z = jax.nn.sigmoid(i_z + h_z)
    n = jnp.tanh(i_n + r * (h_n + params["b_hn"]))
    return (1.0 - z) * n + z * h


def reset_state(h, reset):
    """``h`` zeroed where ``reset`` (``[...]``; ``h`` is ``[..., hidden]``): an episode starts."""
    return jnp.where(reset[..., None], jnp.zeros_like(h), h)


def gru_scan(params: dict, h0, xs, resets):
    """The cell over a time-major sequence: ``xs`` ``[T, ..., inputs]``, ``resets`` ``[T, ...]``
    (true where ``x_t`` starts an episode: the state is zeroed before that step), from ``h0``
    ``[..., hidden]``. Returns ``(h_T, hs)`` with ``hs[t]`` the state after step ``t``."""
    def step(h, inputs):
        x, reset = inputs
        h = reset_state(h, reset)
        h = gru_step(params, h, x)
        return h, h

    return jax.lax.scan(step, h0, (xs, resets))


@struct.dataclass
class Memory:
    """The recurrent state of the actor's and the critic's cells, ``[..., memory_size]`` each."""

    actor: Any
    critic: Any


@struct.dataclass
class Sequences:
    """Observation sequences as a recurrent network reads them, batch-major: ``obs``
    ``[B, T, ...]``, ``resets`` ``[B, T]`` (true where ``obs[:, t]`` starts an episode) and
    ``start`` (:class:`Memory` ``[B, memory_size]``, the state before ``obs[:, 0]``). Indexing
    the leading axis picks whole sequences, so minibatches of sequences are gathered like
    minibatches of samples."""

    obs: Any
    resets: Any
    start: Memory


@struct.dataclass
class RecurrentActorCritic:
    """A separate actor and critic, each ``flatten → dense (tanh, memory_size) → GRU → MLP
    head`` (PureJaxRL's ``ppo_rnn`` ActorCriticRNN, with pgjax's separate actor and critic and
    PPO's head initialisation: gain √2 hidden, 0.01 policy output, 1.0 value output).

    ``policy_step`` / ``value_step`` advance one step of a batch of envs (the rollout, a
    trained policy); ``policy`` / ``value`` read :class:`Sequences` (the update) and give
    ``[B, T]`` distributions and values equal to the step-by-step ones.
    """

    obs_shape: tuple = struct.field(pytree_node=False)
    action_size: int = struct.field(pytree_node=False)
    discrete: bool = struct.field(pytree_node=False)
    actor_hidden: tuple = struct.field(pytree_node=False)
    critic_hidden: tuple = struct.field(pytree_node=False)
    memory_size: int = struct.field(pytree_node=False, default=128)
    squash: bool = struct.field(pytree_node=False, default=False)
    activation: str = struct.field(pytree_node=False, default="tanh")  #: embedding and head

    def _init_part(self, key, hidden, out, out_scale) -> dict:
        k_embed, k_gru, k_head = jax.random.split(key, 3)
        normal = jax.random.normal(k_embed, (math.prod(self.obs_shape), self.memory_size))
        embed = {"w": orthogonal(normal, math.sqrt(2.0)),
                 "b": jnp.zeros((self.memory_size,), jnp.float32)}
        return {"embed": embed, "gru": gru_init(k_gru, self.memory_size, self.memory_size),
                "mlp": mlp_init(k_head, (self.memory_size, *hidden, out), out_scale)}

    def init(self, key: jax.Array) -> ActorCriticParams:
        k_actor, k_critic = jax.random.split(key)
        actor = self._init_part(k_actor, self.actor_hidden, self.action_size, 0.01)
        critic = self._init_part(k_critic, self.critic_hidden, 1, 1.0)
        if not self.discrete:
            actor["log_std"] = jnp.zeros((self.action_size,), jnp.float32)
        return ActorCriticParams(actor, critic)

    def initial_memory(self, batch_shape=()) -> Memory:
        zeros = jnp.zeros((*batch_shape, self.memory_size), jnp.float32)
        return Memory(zeros, zeros)

    def _embed(self, params, obs):
        x = obs.reshape(obs.shape[:obs.ndim - len(self.obs_shape)] + (-1,))
        return ACTIVATIONS[self.activation](x @ params["embed"]["w"] + params["embed"]["b"])

    def _head(self, params, h):
        return mlp_apply(params["mlp"], h, self.activation)

    def _distribution(self, actor_params, out):
        if self.discrete:
            return Categorical(out)
        return (TanhGaussian if self.squash else DiagGaussian)(out, actor_params["log_std"])

    def _step(self, params, h, obs, reset):
        h = reset_state(h, reset)
        h = gru_step(params["gru"], h, self._embed(params, obs))
        return self._head(params, h), h

    def _sequence(self, params, obs, resets, start):
        time_major = jnp.swapaxes(self._embed(params, obs), 0, 1)
        _, hs = gru_scan(params["gru"], start, time_major, jnp.swapaxes(resets, 0, 1))
        return self._head(params, jnp.swapaxes(hs, 0, 1))

    def policy_step(self, actor_params, h, obs, reset):
        """``(π(·|h', obs), h')``: one step from state ``h`` (zeroed where ``reset``)."""
        out, h = self._step(actor_params, h, obs, reset)
        return self._distribution(actor_params, out), h

    def value_step(self, critic_params, h, obs, reset):
        """``(V, h')``: one step of the critic's cell, as :meth:`policy_step`."""
        out, h = self._step(critic_params, h, obs, reset)
        return out[..., 0], h

    def policy(self, actor_params, sequences: Sequences):
        """The policy at every step of ``sequences``: a distribution of batch shape
        ``[B, T]``."""
        out = self._sequence(actor_params, sequences.obs, sequences.resets,
                             sequences.start.actor)
        return self._distribution(actor_params, out)

    def value(self, critic_params, sequences: Sequences):
        """``V`` at every step of ``sequences``, ``[B, T]``."""
        return self._sequence(critic_params, sequences.obs, sequences.resets,
                              sequences.start.critic)[..., 0]

    def rollout_values(self, critic_params, sequences: Sequences, next_obs, last_done):
        """What GAE needs after a rollout: ``V(s_t)`` and ``V(s'_t)`` ``[B, T]`` — the true
        next observation read by the cell from the state after step ``t``, so an episode's
        final observation is valued with that episode's memory — and the critic's state for
        the next rollout (after the last step, zeroed where it ended an episode)."""
        time_major = jnp.swapaxes(self._embed(critic_params, sequences.obs), 0, 1)
        last, hs = gru_scan(critic_params["gru"], sequences.start.critic, time_major,
                            jnp.swapaxes(sequences.resets, 0, 1))
        hs = jnp.swapaxes(hs, 0, 1)
        values = self._head(critic_params, hs)[..., 0]
        after = gru_step(critic_params["gru"], hs, self._embed(critic_params, next_obs))
        next_values = self._head(critic_params, after)[..., 0]
        return values, next_values, reset_state(last, last_done)


def make_recurrent_actor_critic(observation_space: Box, action_space, actor_hidden,
                                critic_hidden, *, memory_size: int = 128,
                                squash: bool = False,
                                activation: str = "tanh") -> RecurrentActorCritic:
    """The recurrent actor-critic for these spaces (flat observations)."""
    action_size, discrete = policy_head(action_space, squash)
    return RecurrentActorCritic(tuple(observation_space.shape), action_size, discrete,
                                tuple(actor_hidden), tuple(critic_hidden), memory_size, squash,
                                activation)
