"""Seeing what relio does: metrics, exporters, health and graceful shutdown.

* :mod:`relio.observe.hooks`: the :class:`Observer` interface the server reports through;
* :mod:`relio.observe.instruments`: dependency-free counters and histograms;
* :mod:`relio.observe.metrics`: :class:`RelioMetrics`, every metric of one server;
* :mod:`relio.observe.prometheus`: ``relio[prometheus]``, a collector and a ``/metrics`` app;
* :mod:`relio.observe.otel`: ``relio[otel]``, OpenTelemetry observable instruments;
* :mod:`relio.observe.health`: ready / draining, and graceful shutdown on SIGTERM.

``docs/OPERATIONS.md`` says what each metric tells and what to alert on.
"""

from relio.observe.hooks import NULL_OBSERVER, Observer
from relio.observe.metrics import Family, RelioMetrics, reason_label

__all__ = ["NULL_OBSERVER", "Family", "Observer", "RelioMetrics", "reason_label"]
