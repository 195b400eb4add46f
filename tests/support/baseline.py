"""python-socketio baselines: what plain python-socketio loses under the same faults as relio.

A baseline run proves nothing about relio and must not decide whether relio's suite passes: an
upstream fix that makes python-socketio lose nothing is good news, not a failure. So a test asserts
that its faults were real from its own instruments (the fault proxy's counters, the balancer's
connection counts, a killed process's exit status, a Redis that did not answer) and hands what
python-socketio lost to :func:`record`, which prints it and attaches it to the test's report
(``record_property``: the JUnit XML and ``--junitxml`` readers see it).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ['record', 'missing', 'dup_missing', 'ranges', 'CountingHandler', 'quiet_logger']


def record(record_property: Callable[[str, Any], None], label: str, info: Any) -> None:
    """Print ``info`` (seen with ``pytest -s``) and attach it to the test's report as
    ``label``."""
    print(f'\nBASELINE {label}: {info}')
    record_property(label, info)


def missing(received: set[int], upto: int) -> list[int]:
    """The numbers of ``range(upto)`` not in ``received``, in order."""
    return sorted(set(range(upto)) - received)


def dup_missing(values: list[int], total: int) -> tuple[list[int], list[int]]:
    """(numbers seen more than once, numbers of ``range(total)`` never seen), both sorted."""
    seen: dict[int, int] = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
    dups = sorted(v for v, c in seen.items() if c > 1)
    return dups, sorted(set(range(total)) - set(seen))


def ranges(nums: list[int]) -> str:
    """[1, 2, 3, 7, 8] -> '1-3,7-8'"""
    out, start, prev = [], None, None
    for n in nums:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f'{start}-{prev}')
            start = prev = n
    if start is not None:
        out.append(f'{start}-{prev}')
    return ','.join(out)


class CountingHandler(logging.Handler):
    """Keeps every record's message (instead of printing it)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def quiet_logger(name: str) -> tuple[logging.Logger, CountingHandler]:
    """A logger that records (instead of printing) python-socketio's manager errors."""
    logger = logging.getLogger(f'tests.baseline.{name}')
    logger.handlers.clear()
    handler = CountingHandler()
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, handler
