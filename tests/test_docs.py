"""The runnable examples in the public docstrings run and print what they say."""

import doctest

import pytest

import pgjax
from pgjax import (advantages, algorithms, analysis, config, devices, drifts, losses, policy,
                   trainer, validation)
from pgjax.algorithms import base, dpo, fixpo, mdpo, mirror, ppo, trpo


@pytest.mark.parametrize("module", [advantages, algorithms, analysis, base, config, devices,
                                    dpo, drifts, fixpo, losses, mdpo, mirror, policy, ppo,
                                    trainer, trpo, validation])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_public_names_are_documented():
    for name in pgjax.__all__:
        obj = getattr(pgjax, name)
        assert getattr(obj, "__doc__", None), name


@pytest.mark.parametrize("module", [drifts, losses])
def test_loss_library_functions_have_runnable_examples(module):
    """The importable library: every public function documents itself with an example."""
    for name, obj in vars(module).items():
        if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", None) == \
                module.__name__ and not isinstance(obj, type):
            assert ">>>" in (obj.__doc__ or ""), f"{module.__name__}.{name}"
