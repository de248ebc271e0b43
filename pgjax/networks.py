"""Separate actor and critic MLPs with the standard PPO initialisation, as pure functions.

Hidden layers: tanh (or another of :data:`ACTIVATIONS`), orthogonal init with gain √2, zero
biases; policy head gain 0.01; value head
gain 1.0 (Huang et al. 2022, "The 37 Implementation Details of PPO", details 2 and 13); the
Gaussian policy has a state-independent log-std initialised to 0. Parameters are plain pytrees
(lists of ``{"w", "b"}`` dicts).

Torsos: image observations ``[H, W, C]`` (every gymnax MinAtar game) go through a CNN torso —
3×3 stride-1 VALID convolutions with ReLU, orthogonal init gain √2, as in MinAtar's networks
(Young & Tian 2019, arXiv 1903.03176) — whose flattened features feed the MLP; other
observations are flattened into the MLP. Actor and critic each have their own torso.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.custom_derivatives import SymbolicZero

from pgjax.distributions import Categorical, DiagGaussian, TanhGaussian
from pgjax.envs import Box, Discrete


def orthogonal(normal, gain: float = 1.0):
    """An orthogonal matrix of ``normal``'s shape from a standard-normal draw: ``gain·Q`` of the
    QR decomposition, signs fixed by ``diag(R)`` (Saxe et al. 2014, arXiv 1312.6120; the same
    law as ``jax.nn.initializers.orthogonal``). Taking the draw as input lets one RNG call feed
    every layer, which keeps the init program small to compile."""
    n_in, n_out = normal.shape
    z = normal.T if n_in < n_out else normal
    q, r = jnp.linalg.qr(z)
    q = q * jnp.sign(jnp.diagonal(r))
    return gain * (q.T if n_in < n_out else q)


def _num_weights(sizes: Sequence[int]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def mlp_from_normal(normal, sizes: Sequence[int], out_scale: float) -> list[dict]:
    """MLP parameters with layer widths ``sizes`` (input first, output last) from a flat
    standard-normal draw of ``Σ n_in·n_out`` numbers: orthogonal weights (gain √2 hidden,
    ``out_scale`` output) and zero biases."""
    layers, start = [], 0
    gains = [math.sqrt(2.0)] * (len(sizes) - 2) + [out_scale]
    for n_in, n_out, gain in zip(sizes[:-1], sizes[1:], gains):
        w = normal[start:start + n_in * n_out].reshape(n_in, n_out)
        layers.append({"w": orthogonal(w, gain), "b": jnp.zeros((n_out,), jnp.float32)})
        start += n_in * n_out
    return layers


def mlp_init(key, sizes: Sequence[int], out_scale: float) -> list[dict]:
    """Parameters of an MLP with layer widths ``sizes`` (see :func:`mlp_from_normal`)."""
    return mlp_from_normal(jax.random.normal(key, (_num_weights(sizes),)), sizes, out_scale)


def conv_from_normal(normal, channels: Sequence[int], kernel: int = 3) -> list[dict]:
    """3×3 conv kernels ``[k, k, c_in, c_out]`` for channel counts ``channels`` (input first)
    from a flat normal draw: orthogonal over the ``(k·k·c_in, c_out)`` matricisation, gain √2
    (as ``jax.nn.initializers.orthogonal`` treats conv kernels), zero biases."""
    layers, start = [], 0
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        size = kernel * kernel * c_in * c_out
        w = orthogonal(normal[start:start + size].reshape(-1, c_out), math.sqrt(2.0))
        layers.append({"w": w.reshape(kernel, kernel, c_in, c_out),
                       "b": jnp.zeros((c_out,), jnp.float32)})
        start += size
    return layers


def _patch_indices(height: int, width: int, channels: int, kernel: int = 3) -> np.ndarray:
    """For a VALID ``kernel``×``kernel`` convolution over flattened ``[H, W, C]`` images, the
    flat input index of every (output position, (dy, dx, c)) pair: ``[H'·W', k·k·C]``."""
    iy, ix = np.meshgrid(np.arange(height - kernel + 1), np.arange(width - kernel + 1),
                         indexing="ij")
    taps = [((iy + dy) * width + (ix + dx)) * channels + c
            for dy in range(kernel) for dx in range(kernel) for c in range(channels)]
    return np.stack(taps, -1).reshape(-1, kernel * kernel * channels)


def conv_apply(layers: list[dict], x):
    """ReLU(conv(x)) per layer for images ``[..., H, W, C]`` (any leading axes), flattened.

    Each VALID 3×3 convolution is computed as patches (one gather with constant indices)
    times the ``[9·C_in, C_out]`` kernel matrix: the same numbers as
    ``lax.conv_general_dilated``, but on XLA:CPU a PPO update on Breakout-MinAtar cost 8.3×
    the MLP torso's this way against 27× with the conv op (benchmarks/README.md)."""
    lead = x.shape[:-3]
    height, width, _ = x.shape[-3:]
    x = x.reshape((-1,) + x.shape[-3:])
    for layer in layers:
        kernel, c_in, c_out = layer["w"].shape[0], layer["w"].shape[2], layer["w"].shape[3]
        patches = x.reshape(x.shape[0], -1)[:, _patch_indices(height, width, c_in, kernel)]
        x = jax.nn.relu(patches @ layer["w"].reshape(-1, c_out) + layer["b"])
        height, width = height - kernel + 1, width - kernel + 1
        x = x.reshape(-1, height, width, c_out)
    return x.reshape(lead + (-1,))


def conv_output_size(obs_shape: Sequence[int], channels: Sequence[int], kernel: int = 3) -> int:
    h, w, _ = obs_shape
    shrink = (len(channels) - 1) * (kernel - 1)
    return (h - shrink) * (w - shrink) * channels[-1]


#: ``dense`` on at most ``SMALL_ROWS`` input rows through a layer at most ``SMALL_WIDTH`` wide
#: on one side (inputs or outputs) is computed as products and a sum (:func:`affine`).
SMALL_ROWS, SMALL_WIDTH = 8, 8


def affine(x, w, b):
    """``x @ w + b``; for a few rows through a narrow layer (a rollout's policy on 4 envs: its
    4-input first layer and 2-output head), as ``Σ_i x_i·w_i + b``, which XLA fuses with the
    activation into one kernel, instead of a library matmul whose fixed cost per call is most
    of the time at these sizes (a CartPole rollout step was 21% faster, benchmarks/README.md).
    Equal up to float summation order."""
    rows = math.prod(x.shape[:-1])
    if rows <= SMALL_ROWS and min(w.shape) <= SMALL_WIDTH:
        return (x[..., :, None] * w).sum(axis=-2) + b
    return x @ w + b


@jax.custom_jvp
def dense(x, w, b):
    """``x @ w + b`` for inputs ``[..., n_in]``, with the weight gradient computed from a
    transposed copy of ``x``.

    Reverse mode turns ``x @ dw`` into ``xᵀ @ ȳ``, a matmul contracting the batch axis of
    ``x``, which XLA:CPU runs through a slower kernel than the row-major ``[n_in, B] @ [B,
    n_out]`` it gets when ``xᵀ`` is materialised first (behind an optimisation barrier, so the
    simplifier does not fold the transpose back). The values and derivatives are the same
    (up to float summation order); a PPO update on CartPole was about 8% faster (measured,
    benchmarks/README.md). The value is :func:`affine`'s."""
    return affine(x, w, b)


def _dense_jvp(primals, tangents):
    x, w, b = primals
    dx, dw, db = tangents
    terms = []
    if not isinstance(dx, SymbolicZero):  # a zero tangent for the inputs (observations)
        terms.append(dx @ w)
    if not isinstance(dw, SymbolicZero):
        if x.ndim < 2:
            terms.append(x @ dw)
        else:
            rows_t = jax.lax.optimization_barrier(x.reshape(-1, x.shape[-1]).T)
            terms.append((rows_t.T @ dw).reshape(x.shape[:-1] + w.shape[-1:]))
    y = affine(x, w, b)
    if not isinstance(db, SymbolicZero):
        terms.append(jnp.broadcast_to(db, y.shape))
    return y, sum(terms[1:], terms[0]) if terms else jnp.zeros_like(y)


dense.defjvp(_dense_jvp, symbolic_zeros=True)


#: Hidden-layer nonlinearities by name (the config's ``activation``): tanh is PPO's (Huang et
#: al. 2022), swish (SiLU, ``x·σ(x)``) Brax PPO's and MuJoCo Playground's.
ACTIVATIONS = {"tanh": jnp.tanh, "swish": jax.nn.swish, "relu": jax.nn.relu, "elu": jax.nn.elu}


def mlp_apply(layers: list[dict], x, activation: str = "tanh"):
    """``activation`` hidden layers (a name of :data:`ACTIVATIONS`), linear output."""
    nonlinearity = ACTIVATIONS[activation]
    for layer in layers[:-1]:
        x = nonlinearity(dense(x, layer["w"], layer["b"]))
    return dense(x, layers[-1]["w"], layers[-1]["b"])


@struct.dataclass
class ActorCriticParams:
    actor: Any  #: {"mlp": layers} (+ "conv": layers, + "log_std" for Gaussian policies)
    critic: Any  #: {"mlp": layers} (+ "conv": layers)


@struct.dataclass
class ActorCritic:
    """Pure functions of a separate actor and critic; the architecture is static."""

    obs_shape: tuple = struct.field(pytree_node=False)
    action_size: int = struct.field(pytree_node=False)  #: categories, or action dimensions
    discrete: bool = struct.field(pytree_node=False)
    actor_hidden: tuple = struct.field(pytree_node=False)
    critic_hidden: tuple = struct.field(pytree_node=False)
    conv_channels: tuple = struct.field(pytree_node=False, default=())  #: () = MLP only
    squash: bool = struct.field(pytree_node=False, default=False)  #: tanh-Gaussian policy
    activation: str = struct.field(pytree_node=False, default="tanh")  #: hidden layers'
    #: asymmetric actor-critic: the actor reads only the first ``actor_features`` of the flat
    #: observation, the critic all of it (None: both read all)
    actor_features: int | None = struct.field(pytree_node=False, default=None)

    def _sizes(self, hidden, out, features=None):
        if self.conv_channels:
            features = conv_output_size(self.obs_shape, (self.obs_shape[-1],
                                                         *self.conv_channels))
        elif features is None:
            features = math.prod(self.obs_shape)
        return (features, *hidden, out)

    def _num_conv(self):
        channels = (self.obs_shape[-1], *self.conv_channels) if self.conv_channels else ()
        return _num_weights(channels) * 9, channels

    def _torso(self, params, obs):
        if self.conv_channels:
            return conv_apply(params["conv"], obs)
        ndim = len(self.obs_shape)
        return obs.reshape(obs.shape[: obs.ndim - ndim] + (-1,))

    def init(self, key: jax.Array) -> ActorCriticParams:
        actor_sizes = self._sizes(self.actor_hidden, self.action_size, self.actor_features)
        critic_sizes = self._sizes(self.critic_hidden, 1)
        n_conv, channels = self._num_conv()
        n_actor = _num_weights(actor_sizes)
        # One normal draw for every layer: each RNG call site costs compile time. The barrier
        # keeps the draw one computation: without it XLA fuses the draw's erf_inv into every
        # layer's slice (six copies of it to compile for two 3-layer MLPs); same numbers.
        normal = jax.lax.optimization_barrier(jax.random.normal(
            key, (2 * n_conv + n_actor + _num_weights(critic_sizes),)))
        actor = {"mlp": mlp_from_normal(normal[:n_actor], actor_sizes, 0.01)}
        critic = {"mlp": mlp_from_normal(normal[n_actor:-2 * n_conv or None], critic_sizes,
                                         1.0)}
        if self.conv_channels:
            actor["conv"] = conv_from_normal(normal[-2 * n_conv:-n_conv], channels)
            critic["conv"] = conv_from_normal(normal[-n_conv:], channels)
        if not self.discrete:
            actor["log_std"] = jnp.zeros((self.action_size,), jnp.float32)
        return ActorCriticParams(actor, critic)

    def policy(self, actor_params, obs) -> Categorical | DiagGaussian | TanhGaussian:
        features = self._torso(actor_params, obs)
        if self.actor_features is not None:
            features = features[..., :self.actor_features]
        out = mlp_apply(actor_params["mlp"], features, self.activation)
        if self.discrete:
            return Categorical(out)
        return (TanhGaussian if self.squash else DiagGaussian)(out, actor_params["log_std"])

    def value(self, critic_params, obs) -> jax.Array:
        return mlp_apply(critic_params["mlp"], self._torso(critic_params, obs),
                         self.activation)[..., 0]


#: Torso choices: "auto" takes the CNN for image observations ``[H, W, C]``, the MLP otherwise.
TORSOS = ("auto", "mlp", "cnn")


def policy_head(action_space, squash: bool = False) -> tuple[int, bool]:
    """``(outputs, discrete)`` of the policy head for ``action_space``: categories, or action
    dimensions of a (tanh-squashed if ``squash``) Gaussian."""
    if isinstance(action_space, Discrete):
        action_size, discrete = action_space.n, True
    elif isinstance(action_space, Box):
        action_size, discrete = math.prod(action_space.shape), False
    else:
        raise TypeError(f"unsupported action space {action_space!r}")
    if squash and discrete:
        raise ValueError("action_head: 'tanh' needs continuous (Box) actions")
    return action_size, discrete


def make_actor_critic(observation_space: Box, action_space, actor_hidden, critic_hidden, *,
                      torso: str = "auto", conv_channels: Sequence[int] = (16,),
                      squash: bool = False, activation: str = "tanh",
                      actor_features: int | None = None) -> ActorCritic:
    """The actor-critic for these spaces (see the module docstring for the architecture).

    Args:
      torso: ``"auto"`` (CNN for ``[H, W, C]`` observations, else MLP), ``"mlp"`` or ``"cnn"``.
      conv_channels: output channels of each 3×3 conv layer of the CNN torso.
      squash: a tanh-squashed Gaussian policy (:class:`TanhGaussian`) for Box actions, instead
        of a Gaussian whose samples are clipped at the env.
      activation: the MLP hidden layers' nonlinearity, a name of :data:`ACTIVATIONS`.
      actor_features: the actor sees only this many leading features of the flat observation
        (an env's ``policy_observation_size``: the critic alone reads the privileged rest).
    """
    action_size, discrete = policy_head(action_space, squash)
    shape = tuple(observation_space.shape)
    if resolve_torso(torso, shape) == "cnn":
        kernel_fit = len(shape) == 3 and min(shape[:2]) > 2 * len(conv_channels)
        if not kernel_fit:
            raise ValueError(f"torso: 'cnn' needs image observations [H, W, C] larger than its "
                             f"{len(conv_channels)} 3×3 convolutions; got shape {shape}")
        channels = tuple(conv_channels)
    else:
        channels = ()
    if actor_features is not None and channels:
        raise ValueError("torso: an asymmetric actor-critic (the env's privileged critic "
                         "observation) needs flat observations, not the CNN torso")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: {activation!r} is not one of {', '.join(ACTIVATIONS)}")
    return ActorCritic(shape, action_size, discrete, tuple(actor_hidden), tuple(critic_hidden),
                       channels, squash, activation, actor_features)


def resolve_torso(torso: str, obs_shape: Sequence[int]) -> str:
    """``"cnn"`` or ``"mlp"``: what ``torso`` (one of :data:`TORSOS`) means for these
    observations."""
    if torso not in TORSOS:
        raise ValueError(f"torso: {torso!r} is not one of {', '.join(TORSOS)}")
    if torso == "auto":
        return "cnn" if len(obs_shape) == 3 else "mlp"
    return torso
