"""The runnable examples in the public docstrings run and print what they say."""

import doctest

import pytest

import pgjax
from pgjax import advantages, config, drifts, losses, trainer


@pytest.mark.parametrize("module", [advantages, config, drifts, losses, trainer])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_public_names_are_documented():
    for name in pgjax.__all__:
        obj = getattr(pgjax, name)
        assert getattr(obj, "__doc__", None), name
