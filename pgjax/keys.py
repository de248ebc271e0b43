"""PRNG keys at pgjax's entry points: typed keys (``jax.random.key(seed)``) and legacy raw keys
(``jax.random.PRNGKey(seed)``, uint32 key data) are both accepted and give the same results."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def typed_key(key) -> jax.Array:
    """``key`` as a typed PRNG key: a typed key (``jax.random.key(seed)``) as it is, legacy key
    data (``jax.random.PRNGKey(seed)``: uint32 ``[..., 2]`` for the default threefry
    implementation) wrapped by ``jax.random.wrap_key_data``, which keeps its bits, so
    ``PRNGKey(s)`` and ``key(s)`` draw the same numbers. Works on a batch of keys and inside
    jit and vmap.

    Example:
      >>> import jax
      >>> from pgjax.keys import typed_key
      >>> bool((jax.random.key_data(typed_key(jax.random.PRNGKey(3)))
      ...       == jax.random.key_data(jax.random.key(3))).all())
      True
      >>> typed_key(jax.random.split(jax.random.PRNGKey(0), 4)).shape
      (4,)
    """
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return key
    data = None if dtype is None else jnp.asarray(key)
    # The default implementation's key-data shape, from an abstract key (nothing is computed).
    expected = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
    width = len(expected.shape)
    if data is None or data.dtype != expected.dtype or data.ndim < width or \
            data.shape[data.ndim - width:] != expected.shape:
        got = (f"{data.dtype} array of shape {data.shape}" if data is not None
               else type(key).__name__)
        raise TypeError(f"key: expected jax.random.key(seed) or jax.random.PRNGKey(seed) "
                        f"({expected.dtype} [..., {', '.join(map(str, expected.shape))}]), "
                        f"got {got}")
    return jax.random.wrap_key_data(data)
