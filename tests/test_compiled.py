"""The hot path must run compiled: a broken build fails here instead of silently running slow code."""

import importlib
import importlib.machinery

import pytest

COMPILED = ["_engine", "_frames", "_events", "_idset", "_ackwindow", "_lru", "_chunks"]


@pytest.mark.parametrize("name", COMPILED)
def test_module_is_a_compiled_extension(name):
    module = importlib.import_module(f"relio.engine.{name}")
    assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), (
        f"relio.engine.{name} was loaded from {module.__file__}, not a compiled extension")


def test_engine_classes_are_extension_types():
    from relio.engine._engine import Engine

    # A cdef class has no instance __dict__ and is not a Python-level class.
    assert not hasattr(Engine(), "__dict__")
    assert type(Engine).__name__ == "type" and Engine.__module__ == "relio.engine._engine"
