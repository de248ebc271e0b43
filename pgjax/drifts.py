"""Drift functions: the one thing that distinguishes first-order Mirror-Learning algorithms.

Every first-order algorithm in pgjax maximises ``E[r·Â − D(r, Â)]`` with ``r = π/π_old``
(Mirror Learning: Kuba, Schroeder de Witt & Foerster, ICML 2022, arXiv 2201.02373). A drift is
a pure per-sample function ``drift(ratio, advantage, **hyperparameters)`` returning an array of
the same shape, ≥ 0, equal to 0 with zero slope at ``ratio == 1``. A new drift is one function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
