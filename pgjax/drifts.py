"""Drift functions: the one thing that distinguishes first-order Mirror-Learning algorithms.

Every first-order algorithm in pgjax maximises ``E[r·Â − D(r, Â)]`` with ``r = π/π_old``
(Mirror Learning: Kuba, Schroeder de Witt & Foerster, ICML 2022, arXiv 2201.02373). A drift is
a pure per-sample function ``drift(ratio, advantage, **hyperparameters)`` returning an array of
the same shape, ≥ 0, equal to 0 with zero slope at ``ratio == 1``. Learned drifts take their
parameters first: ``drift(params, ratio, advantage, ...)``. A new drift is one function.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

#: Hidden width of the learned-drift network (Lu et al. 2022).
LPO_HIDDEN = 128
#: Inputs of the LPO drift network (:func:`lpo_features`), and of TA-LPO's (those × progress).
LPO_FEATURES = 8
TALPO_FEATURES = 2 * LPO_FEATURES
#: The learned drift is ``relu(f − LPO_THRESHOLD)``: zero, with zero slope, near ``r = 1``.
LPO_THRESHOLD = 1e-4
#: Learned-drift parameters shipped with pgjax (``<name>.npz``), loadable by name (:func:`load`).
SHIPPED_DIR = Path(__file__).parent / "drift_params"


def ppo(ratio, advantage, epsilon=0.2):
    """PPO-clip as a drift (Schulman et al. 2017, arXiv 1707.06347)::

        D(r, Â) = relu((r − clip(r, 1 − ε, 1 + ε)) · Â)

    so that ``r·Â − D = min(r·Â, clip(r, 1 ± ε)·Â)``, the clipped surrogate.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts
      >>> d = drifts.ppo(jnp.array([1.0, 1.5, 0.5]), jnp.array([1.0, 1.0, 1.0]))
      >>> [round(x, 4) for x in d.tolist()]
      [0.0, 0.3, 0.0]
    """
    return jax.nn.relu((ratio - jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon)) * advantage)


def spo(ratio, advantage, epsilon=0.2):
    """Simple Policy Optimization (Xie, Zhang, Yang, Hutter & Xu, ICML 2025, arXiv 2401.16025)
    as a drift::

        D(r, Â) = |Â| · (r − 1)² / (2ε)

    The objective ``r·Â − D`` has slope ``Â − |Â|(r − 1)/ε`` in r, so its maximum is exactly at
    the PPO clip boundary ``r* = 1 + sign(Â)·ε``, and a ratio past it is pulled back with a
    force that grows with the distance (PPO's objective is flat there).

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts
      >>> d = drifts.spo(jnp.array([1.0, 1.2, 0.6]), jnp.array([2.0, 2.0, -1.0]))
      >>> [round(x, 4) for x in d.tolist()]  # 2·0.2²/0.4, 1·0.4²/0.4
      [0.0, 0.2, 0.4]
    """
    return jnp.abs(advantage) * jnp.square(ratio - 1.0) / (2.0 * epsilon)


def dpo(ratio, advantage, alpha=2.0, beta=0.6, *, log_ratio=None):
    """Discovered Policy Optimisation (Lu, Kuba, Letcher, Metz, Schroeder de Witt & Foerster,
    NeurIPS 2022, arXiv 2210.05639), the closed form distilled from the learned drift::

        D(r, Â) = relu((r − 1)·Â − α·tanh((r − 1)·Â / α))        if Â ≥ 0
                  relu(log r·Â − β·tanh(log r·Â / β))              if Â < 0

    ``x − c·tanh(x/c) ≈ x³/(3c²)``, so D vanishes at r = 1 with zero first and second
    derivatives. For Â > 0 the objective's slope is ``Â·sech²((r − 1)Â/α)``, a soft clip; for
    Â < 0 it turns positive at small r (a "rollback" of over-shrunk probabilities).

    ``log_ratio``, if given, is used as ``log r`` (it should be ``log π − log π_old``): the
    update passes it, since ``log(exp(ℓ))`` underflows to −inf below ℓ ≈ −103 in float32.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts
      >>> d = drifts.dpo(jnp.array([1.0, 2.0, 0.5]), jnp.array([1.0, 1.0, -1.0]))
      >>> [round(x, 4) for x in d.tolist()]  # 1 − 2·tanh(½), log 2 − 0.6·tanh(log 2 / 0.6)
      [0.0, 0.0758, 0.2015]
    """
    growth = (ratio - 1.0) * advantage
    log_growth = (jnp.log(ratio) if log_ratio is None else log_ratio) * advantage
    positive = jax.nn.relu(growth - alpha * jnp.tanh(growth / alpha))
    negative = jax.nn.relu(log_growth - beta * jnp.tanh(log_growth / beta))
    return jnp.where(advantage >= 0.0, positive, negative)


def mdpo_step_size(progress, num_updates):
    """MDPO's step size ``t_k = 1 − (k − 1)/K`` for update ``k`` (from 0) of ``K``, from
    ``progress = k/K``: ``1 − progress + 1/K`` (the authors' ``mdpo_on/mdpo.py`` line 400,
    ``lr_now = 1.0 - (iters_so_far - 1.0) / n_updates`` with ``iters_so_far`` from 0).

    Example:
      >>> from pgjax import drifts
      >>> [round(float(drifts.mdpo_step_size(k / 4, 4)), 4) for k in range(4)]
      [1.25, 1.0, 0.75, 0.5]
    """
    return 1.0 - progress + 1.0 / num_updates


def mdpo(kl, progress, *, num_updates):
    """On-policy Mirror Descent Policy Optimization (Tomar, Shani, Efroni & Ghavamzadeh,
    ICLR 2022, arXiv 2005.09814) as a drift of the per-state KL rather than of the ratio::

        D(s) = KL(π(·|s) ‖ π_old(·|s)) / t_k,       t_k = 1 − (k − 1)/K

    with ``k`` (from 0) the update index and ``K`` the number of updates
    (:func:`mdpo_step_size`), so the penalty grows from ``K/(K + 1)`` to ``K/2`` over training.
    Note the direction, new‖old (TRPO constrains old‖new). A valid drift: the KL is ≥ 0 and
    zero with zero gradient at π = π_old. :mod:`pgjax.algorithms.mdpo` takes the authors' full-batch
    policy steps on ``E[r·Â − D]``.

    Args:
      kl: the analytic ``KL(π ‖ π_old)`` per sample (e.g. ``policy.kl(old_policy)``).
      progress: ``k/K`` in ``[0, 1)``, the share of training done.
      num_updates: ``K``.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts
      >>> d = drifts.mdpo(jnp.array([0.0, 0.01]), 0.75, num_updates=4)  # 0.01 / 0.5
      >>> [round(x, 4) for x in d.tolist()]
      [0.0, 0.02]
    """
    return kl / mdpo_step_size(progress, num_updates)


@struct.dataclass
class DriftNetParams:
    """Weights of a learned drift network ``f(x) = w_outᵀ tanh(W_hiddenᵀ x)``, no biases."""

    w_hidden: jax.Array  #: ``[num_features, LPO_HIDDEN]``
    w_out: jax.Array  #: ``[LPO_HIDDEN]``


def lpo_features(ratio, advantage, log_ratio=None):
    """The 8 LPO drift-network inputs of Lu et al. 2022 (arXiv 2210.05639), with ``ℓ = log r``
    and ``u = 1 − r``::

        x(r, Â) = [ℓ, ℓ², u, u², Â·ℓ, Â·ℓ², Â·u, Â·u²]

    Every feature is 0 at r = 1. Returns an array of the broadcast shape of ``ratio`` and
    ``advantage`` plus a last axis of 8. ``log_ratio``, if given, is ``ℓ`` (else ``log r``,
    −inf where float32 ``exp(ℓ)`` underflowed, below ℓ ≈ −103).

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts
      >>> drifts.lpo_features(jnp.ones(3), jnp.ones(3)).shape
      (3, 8)
    """
    log_ratio = jnp.log(ratio) if log_ratio is None else log_ratio
    ratio, advantage, log_ratio = jnp.broadcast_arrays(ratio, advantage, log_ratio)
    one_minus = 1.0 - ratio
    base = jnp.stack([log_ratio, log_ratio**2, one_minus, one_minus**2], axis=-1)
    return jnp.concatenate([base, advantage[..., None] * base], axis=-1)


def _learned_drift(params: DriftNetParams, features, ratio, advantage, ppo_init, epsilon):
    """``relu(f(x) − 1e-4)``, or ``relu(D_PPO + f(x) − 1e-4)`` with ``ppo_init``."""
    f = jnp.tanh(features @ params.w_hidden) @ params.w_out
    if ppo_init:
        f = f + ppo(ratio, advantage, epsilon)
    return jax.nn.relu(f - LPO_THRESHOLD)


def lpo(params: DriftNetParams, ratio, advantage, *, ppo_init=True, epsilon=0.2,
        log_ratio=None):
    """Learned Policy Optimisation (Lu et al., NeurIPS 2022, arXiv 2210.05639): a bias-free
    8 → 128 → 1 tanh network ``f`` of :func:`lpo_features`, made a valid drift by::

        D(r, Â) = relu(f(x(r, Â)) − 1e-4)                     (ppo_init=False)
        D(r, Â) = relu(D_PPO,ε(r, Â) + f(x(r, Â)) − 1e-4)     (ppo_init=True)

    All features vanish at r = 1 and the net has no bias, so ``f(1, Â) = 0``; by continuity D is
    identically 0 near r = 1 (zero slope), and the ReLU makes it ≥ 0. With zero parameters
    (:func:`init_lpo`) it is PPO-clip (``ppo_init``) or no drift at all (plain importance
    sampling), up to the 1e-4 threshold. ``log_ratio``: ``log r`` if given, as in :func:`dpo`.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts
      >>> r, a = jnp.array([1.0, 1.5]), jnp.array([1.0, 1.0])
      >>> [round(x, 4) for x in drifts.lpo(drifts.init_lpo(), r, a).tolist()]  # = PPO − 1e-4
      [0.0, 0.2999]
      >>> drifts.lpo(drifts.init_lpo(), r, a, ppo_init=False).tolist()
      [0.0, 0.0]
    """
    return _learned_drift(params, lpo_features(ratio, advantage, log_ratio), ratio, advantage,
                          ppo_init, epsilon)


def talpo(params: DriftNetParams, ratio, advantage, progress, *, ppo_init=True, epsilon=0.2,
          log_ratio=None):
    """Temporally-Aware LPO (Jackson, Lu, Kirsch, Lange, Whiteson & Foerster, ICLR 2024,
    arXiv 2402.05828, Eq. 10): :func:`lpo` on 16 features that also see training progress::

        x(r, Â, n/N) = [x(r, Â), (n/N)·x(r, Â)]

    The progress multiplies the features rather than being appended, so every input is still 0
    at r = 1 and the drift stays valid (an appended ``n/N`` would give ``f(1, Â) ≠ 0``).

    Args:
      params: a 16 → 128 → 1 network (:func:`init_talpo`).
      ratio, advantage: per-sample arrays of one shape.
      progress: ``n/N``, the share of the training budget used so far (a scalar).
      log_ratio: ``log r`` if given, as in :func:`dpo`.

    Example:
      >>> import jax.numpy as jnp
      >>> from pgjax import drifts
      >>> d = drifts.talpo(drifts.init_talpo(), jnp.array([1.5]), jnp.array([1.0]), 0.5)
      >>> round(float(d[0]), 4)
      0.2999
    """
    features = lpo_features(ratio, advantage, log_ratio)
    features = jnp.concatenate([features, progress * features], axis=-1)
    return _learned_drift(params, features, ratio, advantage, ppo_init, epsilon)


def _init_drift_net(num_features, key, scale, hidden):
    if key is None:
        return DriftNetParams(jnp.zeros((num_features, hidden)), jnp.zeros((hidden,)))
    key_hidden, key_out = jax.random.split(key)
    return DriftNetParams(scale * jax.random.normal(key_hidden, (num_features, hidden)),
                          scale * jax.random.normal(key_out, (hidden,)))


def init_lpo(key=None, scale=0.04, hidden=LPO_HIDDEN):
    """Parameters of :func:`lpo` (8 × 128 + 128 = 1,152 numbers with the paper's ``hidden``
    width 128): zeros when ``key`` is None (the evolution-strategy mean of Lu et al. 2022,
    where LPO starts as PPO), else ``scale``-times standard-normal draws. A narrower net is the
    same drift family with fewer parameters for an evolution strategy to search.

    Example:
      >>> from pgjax import drifts
      >>> drifts.init_lpo().w_hidden.shape
      (8, 128)
    """
    return _init_drift_net(LPO_FEATURES, key, scale, hidden)


def init_talpo(key=None, scale=0.04, hidden=LPO_HIDDEN):
    """Parameters of :func:`talpo` (16 × 128 + 128 = 2,176 numbers); see :func:`init_lpo`.

    Example:
      >>> import jax
      >>> from pgjax import drifts
      >>> drifts.init_talpo(jax.random.key(0)).w_hidden.shape
      (16, 128)
    """
    return _init_drift_net(TALPO_FEATURES, key, scale, hidden)


def save_params(path, params: DriftNetParams) -> None:
    """Write learned-drift parameters to a ``.npz`` file (arrays ``w_hidden`` and ``w_out``).

    Example:
      >>> import os, tempfile
      >>> from pgjax import drifts
      >>> path = os.path.join(tempfile.mkdtemp(), "drift.npz")
      >>> drifts.save_params(path, drifts.init_talpo())
      >>> drifts.load_params(path).w_hidden.shape
      (16, 128)
    """
    np.savez(path, w_hidden=np.asarray(params.w_hidden), w_out=np.asarray(params.w_out))


def load_params(path) -> DriftNetParams:
    """Read learned-drift parameters written by :func:`save_params` (or any ``.npz`` with
    arrays ``w_hidden [F, H]`` and ``w_out [H]``); raises a one-line ``ValueError`` otherwise.

    Example:
      >>> import os, tempfile
      >>> from pgjax import drifts
      >>> path = os.path.join(tempfile.mkdtemp(), "lpo.npz")
      >>> drifts.save_params(path, drifts.init_lpo())
      >>> float(abs(drifts.load_params(path).w_out).max())
      0.0
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as error:  # noqa: BLE001 - missing, unreadable or not an .npz: one line
        raise ValueError(f"drift_params: cannot read {path} as an .npz file "
                         f"({type(error).__name__}: {error})") from None
    if not {"w_hidden", "w_out"} <= set(arrays):
        raise ValueError(f"drift_params: {path} has arrays {sorted(arrays)}, "
                         "expected w_hidden and w_out")
    w_hidden, w_out = arrays["w_hidden"], arrays["w_out"]
    if w_hidden.ndim != 2 or w_out.shape != (w_hidden.shape[1],):
        raise ValueError(f"drift_params: {path} has w_hidden {w_hidden.shape} and w_out "
                         f"{w_out.shape}; expected [F, H] and [H]")
    return DriftNetParams(jnp.asarray(w_hidden, jnp.float32), jnp.asarray(w_out, jnp.float32))


def shipped() -> list[str]:
    """Names of the learned drifts shipped with pgjax (each also a registered algorithm).

    Example:
      >>> from pgjax import drifts
      >>> drifts.shipped()
      ['lpo_cartpole']
    """
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.npz"))


def load(name) -> DriftNetParams:
    """Learned-drift parameters by shipped name (:func:`shipped`) or ``.npz`` path.

    A shipped drift's network width tells its kind: 8 input features for :func:`lpo`, 16 for
    :func:`talpo`. Its ``SHIPPED_DIR/<name>.json`` records how it was found (script, budget,
    fitness).

    Example:
      >>> from pgjax import drifts
      >>> drifts.load("lpo_cartpole").w_hidden.shape  # 8 LPO features, 16 hidden units
      (8, 16)
    """
    path = SHIPPED_DIR / f"{name}.npz"
    if path.exists():
        return load_params(path)
    if str(name).endswith(".npz") or Path(str(name)).exists():
        return load_params(name)
    raise ValueError(f"drift_params: {name!r} is neither a shipped drift "
                     f"({', '.join(shipped()) or 'none'}) nor an .npz file")
