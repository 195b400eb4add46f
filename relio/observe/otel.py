"""``relio[otel]``: relio's metrics as OpenTelemetry instruments (needs ``opentelemetry-api``).

:func:`instrument` registers, on a meter, one observable instrument per relio metric, read from
:meth:`RelioMetrics.collect() <relio.observe.RelioMetrics.collect>` once per collection cycle, and
a histogram of handler durations fed as handlers finish. The application brings the SDK, its
exporter and its resource (``service.instance.id`` plays the part of Prometheus' ``node`` label,
which is therefore not an attribute here)::

    metrics = relio.observe.RelioMetrics(sio)
    relio.observe.otel.instrument(metrics)        # the global MeterProvider by default

Names follow OpenTelemetry's messaging semantic conventions where they fit:
``messaging.client.sent.messages`` and ``messaging.client.consumed.messages`` (counters),
``messaging.process.duration`` (handler durations, seconds), with ``messaging.system`` = ``relio``
and ``messaging.destination.name`` = the Socket.IO namespace; failures carry ``error.type``. The
rest are ``relio.*`` (``relio.server.sessions`` with ``relio.session.state``, as SignalR's
``signalr.server.active_connections``). Distributions that relio builds at scrape time (session
RTTs, relay lag, save latency) are exported as their ``.sum`` and ``.count`` counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from relio.observe.hooks import Observer
from relio.observe.instruments import HistogramValue
from relio.observe.metrics import Family, RelioMetrics

#: relio metric -> (OpenTelemetry name, unit)
NAMES = {
    "relio_messages_sent": ("messaging.client.sent.messages", "{message}"),
    "relio_messages_received": ("messaging.client.consumed.messages", "{message}"),
    "relio_sessions": ("relio.server.sessions", "{session}"),
}
#: relio label -> OpenTelemetry attribute (``node`` is the resource's business)
ATTRIBUTES = {"namespace": "messaging.destination.name", "state": "relio.session.state",
              "outcome": "relio.resume.outcome", "reason": "error.type", "kind": "error.type",
              "event": "messaging.operation.name"}
#: Collect at most this often: every instrument's callback of one export reads one collection.
CACHE_SECONDS = 0.5


def otel_name(family: Family) -> tuple[str, str]:
    if family.name in NAMES:
        return NAMES[family.name]
    unit = {"seconds": "s", "bytes": "By"}.get(family.unit, "1")
    return family.name.replace("_", "."), unit


def _attributes(family: Family, key: tuple) -> dict[str, Any]:
    attrs: dict[str, Any] = {"messaging.system": "relio"}
    for name, value in zip(family.label_names, key, strict=True):
        if name != "node" and value != "":
            attrs[ATTRIBUTES.get(name, f"relio.{name}")] = value
    return attrs


class _Cache:
    """One :meth:`RelioMetrics.collect` shared by the callbacks of one collection cycle."""

    def __init__(self, metrics: RelioMetrics):
        self.metrics = metrics
        self.at = -1.0
        self.families: dict[str, Family] = {}

    def get(self, name: str) -> Family | None:
        now = time.monotonic()
        if now - self.at > CACHE_SECONDS:
            self.families = {f.name: f for f in self.metrics.collect()}
            self.at = now
        return self.families.get(name)


def _callback(cache: _Cache, name: str, part: str = "") -> Callable:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        family = cache.get(name)
        if family is None:
            return []
        out = []
        for key, value in family.samples:
            if isinstance(value, HistogramValue):
                value = value.sum if part == "sum" else value.count
            out.append(Observation(value, _attributes(family, key)))
        return out
    return observe


class _HandlerDurations(Observer):
    """Feeds ``messaging.process.duration`` as handlers finish."""

    def __init__(self, meter: Meter):
        self.histogram = meter.create_histogram(
            "messaging.process.duration", unit="s",
            description="Time from a handler's start to its end.")

    def handler_timer(self, namespace: str) -> Callable[[float], None] | None:
        record = self.histogram.record
        attrs = {"messaging.system": "relio", "messaging.destination.name": namespace}

        def report(seconds: float) -> None:
            record(seconds, attrs)
        return report


def instrument(metrics: RelioMetrics, meter_provider: Any = None) -> Meter:
    """Register relio's instruments for ``metrics`` (a :class:`RelioMetrics` attached to its
    server) on ``meter_provider`` (default: the global one); returns the meter."""
    provider = meter_provider or otel_metrics.get_meter_provider()
    meter = provider.get_meter("relio")
    cache = _Cache(metrics)
    if metrics.server is None:
        raise ValueError("attach the RelioMetrics to its server first")
    for family in metrics.collect():
        if family.name == "relio_handler_duration_seconds":
            continue                   # a real histogram, below
        name, unit = otel_name(family)
        doc = family.documentation
        if family.kind == "counter":
            meter.create_observable_counter(name, [_callback(cache, family.name)], unit, doc)
        elif family.kind == "gauge":
            meter.create_observable_up_down_counter(name, [_callback(cache, family.name)],
                                                    unit, doc)
        else:
            meter.create_observable_counter(f"{name}.sum", [_callback(cache, family.name, "sum")],
                                            unit, doc + " (sum)")
            count_callback = _callback(cache, family.name, "count")
            if family.kind == "gauge_histogram":
                meter.create_observable_up_down_counter(f"{name}.count", [count_callback], "1",
                                                        doc + " (count)")
            else:
                meter.create_observable_counter(f"{name}.count", [count_callback], "1",
                                                doc + " (count)")
    metrics.server.relio_observe(_HandlerDurations(meter))
    return meter
