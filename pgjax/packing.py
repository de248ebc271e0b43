"""Pytrees packed by dtype: one array per dtype instead of one per leaf.

XLA:CPU gives every array a loop carries, or a scan stacks, a kernel (and a copy) of its own
at every iteration, and does not fuse one kernel's several outputs: a pytree of a dozen small
leaves costs a dozen kernels a step to run and to compile. Packed, it costs one per dtype. The
rollout carries the env state and stacks its transitions packed (:mod:`pgjax.rollout`), the
first-order update stacks its per-step metrics packed (:mod:`pgjax.updates`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["dtype_packing", "packing_within", "scan_packed"]


def dtype_packing(template, lead_ndim: int = 0):
    """``(pack, unpack)`` for pytrees shaped like ``template``: ``pack`` concatenates the leaves
    of each dtype, each flattened after its ``lead_ndim`` leading axes, into one array
    (``{dtype name: [*lead, width]}``, PRNG keys left as they are); ``unpack`` slices them
    back into the same pytree, exactly."""
    leaves, treedef = jax.tree.flatten(template)
    shapes = [leaf.shape[lead_ndim:] for leaf in leaves]
    groups: dict[str, list[int]] = {}
    for i, leaf in enumerate(leaves):
        if not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            groups.setdefault(jnp.dtype(leaf.dtype).name, []).append(i)
    packed_leaves = {i for members in groups.values() for i in members}

    def pack(tree):
        leaves = jax.tree.leaves(tree)
        lead = leaves[0].shape[:lead_ndim] if leaves else ()
        packed = {name: jnp.concatenate([leaves[i].reshape(lead + (-1,)) for i in members],
                                        axis=-1) for name, members in groups.items()}
        return packed, [leaf for i, leaf in enumerate(leaves) if i not in packed_leaves]

    def unpack(packed_tree):
        packed, others = packed_tree
        leaves = [None] * len(shapes)
        for name, members in groups.items():
            start = 0
            for i in members:
                width = math.prod(shapes[i])
                column = packed[name][..., start:start + width]
                leaves[i] = column.reshape(column.shape[:-1] + shapes[i])
                start += width
        others = iter(others)
        return jax.tree.unflatten(treedef, [next(others) if leaf is None else leaf
                                            for leaf in leaves])

    return pack, unpack


def packing_within(tree, max_bytes: int | None, lead_ndim: int = 0):
    """:func:`dtype_packing` of ``tree`` when its leaves other than PRNG keys hold at most
    ``max_bytes`` after their ``lead_ndim`` leading axes (per env, for ``[num_envs, ...]``
    leaves; None: any size), else ``(pack, unpack)`` that return the tree as it is."""
    leaves = jax.tree.leaves(tree)
    size = sum(math.prod(leaf.shape[lead_ndim:]) * jnp.dtype(leaf.dtype).itemsize
               for leaf in leaves if not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key))
    if max_bytes is not None and size > max_bytes:
        return (lambda tree: tree), (lambda tree: tree)
    return dtype_packing(tree, lead_ndim)


def scan_packed(step, carry, xs, *, length: int | None = None, max_bytes: int | None = None,
                lead_ndim: int = 0):
    """``jax.lax.scan(step, carry, xs, length=length)`` whose per-step outputs are stacked
    packed by dtype (:func:`packing_within` with ``max_bytes`` and ``lead_ndim``) and unpacked
    after the scan: the same arrays, with one stacked array per dtype to write at every step
    instead of one per leaf."""
    unpack = []

    def packed_step(carry, x):
        carry, outputs = step(carry, x)
        pack, unpack_outputs = packing_within(outputs, max_bytes, lead_ndim)
        unpack[:] = [unpack_outputs]
        return carry, pack(outputs)

    carry, stacked = jax.lax.scan(packed_step, carry, xs, length=length)
    return carry, unpack[0](stacked)
