"""The hot path must run compiled: a broken build fails here instead of silently running slow
code."""

import importlib
import importlib.machinery
import os

import pytest

COMPILED = ["_engine", "_frames", "_events", "_idset", "_ackwindow", "_lru", "_chunks", "_step",
            "_payload"]


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


@pytest.mark.parametrize("name", COMPILED)
def test_module_reports_the_expected_build(name):
    # RELIO_DEBUG_BUILD=1 at build time makes a debug build (bounds and wraparound checks, -O0);
    # CI runs the engine tests against one with RELIO_EXPECT_DEBUG_BUILD=1 (.ci/debug-tests), and
    # this fails if another build (the editable install's, say) was imported instead.
    module = importlib.import_module(f"relio.engine.{name}")
    expect = os.environ.get("RELIO_EXPECT_DEBUG_BUILD", "")
    loaded = "debug" if module.DEBUG_BUILD else "release"
    assert module.DEBUG_BUILD is (expect == "1"), (
        f"relio.engine.{name} from {module.__file__} is a {loaded} build;"
        f" RELIO_EXPECT_DEBUG_BUILD={expect!r}")
