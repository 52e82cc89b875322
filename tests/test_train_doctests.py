"""The worked examples in train/'s docstrings run (pytest collects doctests from analyze/ only: train/ needs torch)."""

import doctest
import importlib

import pytest

MODULES = ["train.schedule", "train.launch", "train.outputs", "train.plateau.advice", "train.plateau.judge",
           "train.plateau.report", "train.plateau.watch", "train.rows", "train.collate", "train.loss",
           "train.overrides"]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
