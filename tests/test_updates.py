"""The minibatch shuffle is a uniformly random permutation per epoch."""

import collections
import math

import jax
import numpy as np
import pytest

from pgjax.updates import shuffled_indices


@pytest.mark.parametrize("size", [1, 7, 2048, 3000, 1 << 17])
def test_every_row_is_a_permutation(size):
    rows = np.asarray(shuffled_indices(jax.random.key(size), 3, size))
    assert rows.shape == (3, size)
    for row in rows:
        np.testing.assert_array_equal(np.sort(row), np.arange(size))
    if size > 1:
        assert not np.array_equal(rows[0], rows[1])


def test_all_orders_are_equally_likely():
    # 24 000 shuffles of 4 items: each of the 24 orders ~1000 times; chi-square with 23 dof has
    # a 0.1% upper quantile of 49.7.
    rows = np.asarray(shuffled_indices(jax.random.key(0), 24_000, 4))
    counts = collections.Counter(map(tuple, rows))
    assert len(counts) == math.factorial(4)
    chi2 = sum((c - 1000) ** 2 / 1000 for c in counts.values())
    assert chi2 < 49.7


def test_position_of_an_item_is_uniform_in_a_large_batch():
    rows = np.asarray(shuffled_indices(jax.random.key(1), 4000, 2048))
    where_zero = np.argmax(rows == 0, axis=1)
    # Uniform on 0..2047: mean 1023.5, std of the mean ≈ 591 / √4000 ≈ 9.3.
    assert abs(where_zero.mean() - 1023.5) < 40
