"""PRNG keys at pgjax's entry points: typed keys (``jax.random.key(seed)``) and legacy raw keys
(``jax.random.PRNGKey(seed)``, uint32 key data) are both accepted and give the same results."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


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


# --- jax.random's threefry draws, written out -------------------------------------------------
# On CPU, JAX lowers every threefry call as a rolled loop of 5 iterations (about a dozen small
# kernels each, dispatched one by one). The draws inside pgjax's training loop (the update's
# keys, the rollout's sampling noise, the shuffle's bits, gymnax's prepared resets' split) use
# the same function (Threefry-2x32, 20 rounds; Salmon et al. 2011, "Parallel random numbers:
# as easy as 1, 2, 3") written out, which XLA fuses into one kernel: the same bits as
# jax.random.split / bits / gumbel / normal under jit (tested bit for bit), for typed or
# legacy keys of JAX's default implementation with ``jax_threefry_partitionable`` on (JAX's
# default); for other keys these call jax.random. A CartPole PPO update ran 5–6% faster
# (benchmarks/README.md). Draws made once (a run's init) keep jax.random's rolled loop: the
# written-out kernel is slower to compile.

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k1, k2, x1, x2):
    """The Threefry-2x32 block function of keys ``(k1, k2)`` on counters ``(x1, x2)`` (uint32
    arrays), 20 rounds, as ``jax.random``'s threefry implementation computes it."""
    schedule = (k1, k2, k1 ^ k2 ^ jnp.uint32(0x1BD11BDA))
    x1, x2 = x1 + schedule[0], x2 + schedule[1]
    for i in range(5):
        for rotation in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = x1 ^ ((x2 << jnp.uint32(rotation)) | (x2 >> jnp.uint32(32 - rotation)))
        x1 = x1 + schedule[(i + 1) % 3]
        x2 = x2 + schedule[(i + 2) % 3] + jnp.uint32(i + 1)
    return x1, x2


def _written_out(key) -> bool:
    return (str(jax.random.key_impl(key)) == "threefry2x32"
            and jax.config.jax_threefry_partitionable)


def _hash_counters(key, size: int):
    """Threefry of ``key`` on the counters ``0 … size−1`` (JAX's ``iota_2x32_shape``)."""
    data = jax.random.key_data(key)
    count = jnp.arange(size, dtype=jnp.uint32)
    return threefry2x32(data[0], data[1], jnp.zeros_like(count), count)


def split_key(key, num: int) -> jax.Array:
    """``jax.random.split(key, num)``: ``num`` typed keys, the same ones."""
    key = typed_key(key)
    if not _written_out(key) or num >= 2**32:  # counters beyond 32 bits: JAX's own
        return jax.random.split(key, num)
    words = jnp.stack(_hash_counters(key, num), axis=-1)
    return jax.random.wrap_key_data(words, impl=jax.random.key_impl(key))


def random_bits(key, shape) -> jax.Array:
    """``jax.random.bits(key, shape)``: uint32 random bits, the same ones."""
    key, shape = typed_key(key), tuple(shape)
    if not _written_out(key) or math.prod(shape) >= 2**32:
        return jax.random.bits(key, shape)
    hi, lo = _hash_counters(key, math.prod(shape))
    return (hi ^ lo).reshape(shape)


def _uniform(key, shape, dtype, low, high):
    """``jax.random.uniform(key, shape, dtype, low, high)`` for float32: 23 random mantissa
    bits under exponent 0, shifted and scaled, as JAX computes it."""
    mantissa = (random_bits(key, shape) >> jnp.uint32(9)) | jnp.uint32(0x3F800000)
    floats = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - jnp.float32(1.0)
    low, high = jnp.asarray(low, dtype), jnp.asarray(high, dtype)
    return jnp.maximum(low, floats * (high - low) + low)


def gumbel(key, shape, dtype=jnp.float32) -> jax.Array:
    """``jax.random.gumbel(key, shape, dtype)``: ``−log(−log u)``, the same numbers."""
    if not (_written_out(typed_key(key)) and jnp.dtype(dtype) == jnp.float32):
        return jax.random.gumbel(typed_key(key), shape, dtype)
    tiny = np.finfo(np.float32).tiny
    return -jnp.log(-jnp.log(_uniform(key, shape, dtype, tiny, 1.0)))


def normal(key, shape, dtype=jnp.float32) -> jax.Array:
    """``jax.random.normal(key, shape, dtype)``: ``√2·erfinv(u)`` for ``u`` uniform on
    ``(−1, 1)``, the same numbers."""
    if not (_written_out(typed_key(key)) and jnp.dtype(dtype) == jnp.float32):
        return jax.random.normal(typed_key(key), shape, dtype)
    low = np.nextafter(np.float32(-1.0), np.float32(0.0), dtype=np.float32)
    u = _uniform(key, shape, dtype, low, 1.0)
    return jnp.float32(np.sqrt(2)) * jax.lax.erf_inv(u)
