"""relio's metrics through OpenTelemetry (``relio.observe.otel``), read with the SDK's in-memory
reader from a real server on 127.0.0.1 after known traffic."""
from __future__ import annotations

import pytest
import socketio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import relio
from relio.observe import RelioMetrics
from relio.observe.otel import instrument
from tests.support.servers import start_asgi
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(60)

N = 30


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    out: dict[str, list] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def value(pts: dict, name: str, **attrs) -> float:
    return sum(p.value for p in pts.get(name, [])
               if all(p.attributes.get(k) == v for k, v in attrs.items()))


async def test_otel_instruments_follow_the_traffic():
    sio = relio.AsyncServer(async_mode='asgi')
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = RelioMetrics(sio, node='n1')
    instrument(metrics, provider)
    got: list[int] = []

    @sio.on('up')
    def up(sid, n):
        got.append(n)

    srv = await start_asgi(socketio.ASGIApp(sio))
    client = relio.AsyncClient(handle_sigint=False)
    try:
        await client.connect(srv.url, transports=['websocket'])
        for n in range(N):
            await client.emit('up', n)
        await until(lambda: len(got) == N, 10, 'the messages')
        await sio.emit('down', 1)
        pts = points(reader)
        ns = {'messaging.system': 'relio', 'messaging.destination.name': '/'}
        assert value(pts, 'messaging.client.consumed.messages', **ns) == N
        assert value(pts, 'messaging.client.sent.messages', **ns) == 1
        state = 'relio.session.state'
        assert value(pts, 'relio.server.sessions', **ns, **{state: 'connected'}) == 1
        assert value(pts, 'relio.server.sessions', **{state: 'suspended'}) == 0
        durations = [p for p in pts['messaging.process.duration']
                     if p.attributes.get('messaging.destination.name') == '/']
        assert sum(p.count for p in durations) == N
        assert all('node' not in p.attributes for ps in pts.values() for p in ps)

        await client.disconnect()
        await until(lambda: sio.relio_sessions == 0, 5, 'the session ended')
        await until(lambda: value(points(reader), 'relio.sessions.ended',
                                  **{'error.type': 'client disconnect'}) == 1, 5,
                    'relio.sessions.ended')
        pts = points(reader)
        assert value(pts, 'messaging.client.consumed.messages', **ns) == N   # kept after the end
        provider.shutdown()
    finally:
        if client.connected:
            await client.disconnect()
        await sio.shutdown()
        await srv.stop()
