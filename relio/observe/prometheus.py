"""``relio[prometheus]``: relio's metrics for Prometheus (needs ``prometheus_client``).

:class:`RelioCollector` turns :meth:`RelioMetrics.collect() <relio.observe.RelioMetrics.collect>`
into Prometheus metric families at scrape time; :func:`metrics_app` is an ASGI app serving them,
to mount beside the Socket.IO app::

    metrics = relio.observe.RelioMetrics(sio)
    app = socketio.ASGIApp(sio, other_asgi_app=relio.observe.prometheus.metrics_app(metrics))

Every sample carries a ``node`` label. Values are read from the process that serves the sessions,
so with several worker processes each worker is its own target (see docs/OPERATIONS.md:
prometheus_client's multiprocess mode cannot aggregate values read at scrape time).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from relio.observe.instruments import HistogramValue
from relio.observe.metrics import Family, RelioMetrics

#: Seconds a scrape from another thread waits for the event loop to read the metrics (a loop
#: blocked longer than this has bigger problems; the scrape then fails rather than hangs).
SCRAPE_TIMEOUT = 10.0


class RelioCollector(Collector):
    """A prometheus_client collector reading a :class:`RelioMetrics` at each scrape.

    :param loop: the event loop the server runs on, when scrapes come from another thread
                 (:func:`start_metrics_server`): the reading then runs on that loop, where the
                 sessions change, and the scrape thread waits for it.
    """

    def __init__(self, metrics: RelioMetrics, loop: asyncio.AbstractEventLoop | None = None):
        self.metrics = metrics
        self.loop = loop

    def describe(self) -> list[Metric]:
        return []      # values are read at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        for family in self._families():
            yield to_prometheus(family)

    def _families(self) -> list[Family]:
        loop = self.loop
        if loop is None or _on_loop(loop):
            return self.metrics.collect()
        done: concurrent.futures.Future[list[Family]] = concurrent.futures.Future()

        def read() -> None:
            try:
                done.set_result(self.metrics.collect())
            except BaseException as exc:  # handed to the scrape thread
                done.set_exception(exc)
        loop.call_soon_threadsafe(read)
        return done.result(SCRAPE_TIMEOUT)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _buckets(value: HistogramValue) -> list[tuple[str, float]]:
    return [("+Inf" if bound == float("inf") else repr(bound), count)
            for bound, count in value.cumulative()]


def to_prometheus(family: Family) -> Metric:
    """One :class:`~relio.observe.Family` as a prometheus_client metric family."""
    labels = list(family.label_names)
    metric: Any
    if family.kind == "counter":
        metric = CounterMetricFamily(family.name, family.documentation, labels=labels)
        for key, value in family.samples:
            metric.add_metric(list(key), value)
    elif family.kind == "gauge":
        metric = GaugeMetricFamily(family.name, family.documentation, labels=labels)
        for key, value in family.samples:
            metric.add_metric(list(key), value)
    elif family.kind == "histogram":
        metric = HistogramMetricFamily(family.name, family.documentation, labels=labels)
        for key, value in family.samples:
            metric.add_metric(list(key), _buckets(value), value.sum)
    else:
        metric = GaugeHistogramMetricFamily(family.name, family.documentation, labels=labels)
        for key, value in family.samples:
            metric.add_metric(list(key), _buckets(value), value.sum)
    return metric


def registry_for(metrics: RelioMetrics, registry: CollectorRegistry | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> CollectorRegistry:
    """``registry`` (default: a new one, without the process and platform collectors) with a
    :class:`RelioCollector` for ``metrics`` registered."""
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(RelioCollector(metrics, loop))
    return registry


def metrics_app(metrics: RelioMetrics, registry: CollectorRegistry | None = None,
                path: str = "/metrics"):
    """An ASGI app that serves ``metrics`` (and whatever else ``registry`` holds) at ``path``
    and answers 404 elsewhere; give it to ``socketio.ASGIApp(..., other_asgi_app=...)``."""
    serve = make_asgi_app(registry_for(metrics, registry))

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope.get("path") == path:
            await serve(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            return
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"not found"})
    return app


def start_metrics_server(metrics: RelioMetrics, port: int, addr: str = "127.0.0.1",
                         registry: CollectorRegistry | None = None):
    """Serve ``metrics`` on their own port from a thread (prometheus_client's
    ``start_http_server``): one port per worker process when several workers share the
    application's port. Call it on the server's event loop (e.g. at lifespan startup): each
    scrape reads the metrics there. Returns ``(server, thread)``; ``server.shutdown()`` stops
    it."""
    from prometheus_client import start_http_server
    loop = asyncio.get_running_loop()
    return start_http_server(port, addr, registry_for(metrics, registry, loop))
