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

import jax
import jax.numpy as jnp

from pgjax.networks import orthogonal

__all__ = ["gru_init", "gru_scan", "gru_step"]


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


def gru_scan(params: dict, h0, xs, resets):
    """The cell over a time-major sequence: ``xs`` ``[T, ..., inputs]``, ``resets`` ``[T, ...]``
    (true where ``x_t`` starts an episode: the state is zeroed before that step), from ``h0``
    ``[..., hidden]``. Returns ``(h_T, hs)`` with ``hs[t]`` the state after step ``t``."""
    def step(h, inputs):
        x, reset = inputs
        h = jnp.where(reset[..., None], jnp.zeros_like(h), h)
        h = gru_step(params, h, x)
        return h, h

    return jax.lax.scan(step, h0, (xs, resets))
