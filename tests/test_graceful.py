"""Graceful shutdown on SIGTERM (``relio.observe.health``), traffic both ways.

A relio server runs as its own OS process (tests/support/graceful_app.py) under uvicorn (and, in a
second run, under gunicorn with uvicorn's worker class, SIGTERM sent to the master), with
``Health.install_signal_handlers``; a relio client sends numbered messages up while the server
feeds numbered messages down. SIGTERM arrives mid-traffic: the server drains and ends the session
telling the client (its ``disconnect`` handler runs, it does not reconnect),
and nothing is lost: every message the server queued reached the client, in order, once; every
message up that the client saw acknowledged reached a handler, once. With two nodes sharing Redis
the session is handed over instead and the client resumes it on the other node. In process,
``/readyz`` and ``/livez`` are checked through the drain.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import aiohttp
import pytest
import socketio

import relio
from relio.demo.faultproxy import FaultProxy
from relio.observe.health import Health
from tests.support.balancer import Balancer
from tests.support.nodes import REPO_ROOT, _port_open
from tests.support.processes import ManagedProcess, free_port
from tests.support.redis_server import run_redis
from tests.support.scrape import scrape
from tests.support.servers import start_asgi
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(60)


class GracefulNode(ManagedProcess):
    label = 'graceful node'

    def __init__(self, datadir, redis_url: str | None = None, launcher: str = 'uvicorn'):
        super().__init__(startup_timeout=20.0)
        self.launcher = launcher
        self.port = free_port()
        self.log = os.path.join(str(datadir), f'node-{self.port}.log')
        self.capture = os.path.join(str(datadir), f'node-{self.port}.out')
        self.redis_url = redis_url

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def args(self) -> list[str]:
        if self.launcher == 'gunicorn':        # the master; SIGTERM goes on to its worker
            return [sys.executable, '-m', 'gunicorn', '-k', 'uvicorn.workers.UvicornWorker',
                    '-w', '1', '-b', f'127.0.0.1:{self.port}', '--graceful-timeout', '20',
                    'tests.support.graceful_app:create_app()']
        args = [sys.executable, '-m', 'tests.support.graceful_app', '--port', str(self.port),
                '--log', self.log]
        return args + (['--redis', self.redis_url] if self.redis_url else [])

    async def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, PYTHONUNBUFFERED='1',
                   RELIO_TEST_LOG=self.log, RELIO_TEST_REDIS=self.redis_url or '')
        await self._launch(REPO_ROOT, env, self.capture)

    async def _ready(self) -> bool:
        return await _port_open(self.port)

    def _diagnostics(self) -> str:
        with open(self.capture, encoding='utf-8', errors='replace') as f:
            return f.read()[-3000:]

    def lines(self, kind: str) -> list[int]:
        with open(self.log, encoding='utf-8') as f:
            return [int(p[2]) for p in (line.split() for line in f) if p[0] == kind]

    def logged(self, word: str) -> bool:
        with open(self.log, encoding='utf-8') as f:
            return any(line.strip() == word for line in f)

    async def close(self) -> None:
        """SIGKILL if still running; close the capture file."""
        await self._reap()

    async def wait_exit(self, timeout: float) -> int | None:
        await self._wait_exit(timeout)
        return self.proc.poll() if self.proc is not None else None


def documented_metrics() -> set[str]:
    """The metric names docs/OPERATIONS.md and docs/grafana-relio.json use (the opt-in
    ``relio_events_received_total`` aside)."""
    names: set[str] = set()
    for doc in ('OPERATIONS.md', 'grafana-relio.json'):
        with open(os.path.join(REPO_ROOT, 'docs', doc), encoding='utf-8') as f:
            names |= set(re.findall(r'relio_[a-z_]+', f.read()))
    names = {re.sub(r'_(bucket|gcount|gsum|count|sum)$', '', n) for n in names}
    return names - {'relio_events_received_total', 'relio_delivery_error', 'relio_resume',
                    'relio_suspend', 'relio_config'}


async def get(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            return response.status, await response.json()


@pytest.mark.parametrize('launcher', ['uvicorn', 'gunicorn'])
async def test_sigterm_one_node_drains_and_tells_the_client(tmp_path, launcher):
    node = GracefulNode(tmp_path, launcher=launcher)
    await node.start()
    client = relio.AsyncClient(reconnection_delay=0.1, handle_sigint=False)
    down: list[int] = []
    reasons: list[str] = []
    deliveries: dict[int, relio.Delivery] = {}

    @client.on('down')
    def on_down(n):
        down.append(n)

    @client.event
    def disconnect(reason=None):
        reasons.append(str(reason))

    try:
        assert (await get(f'{node.url}/readyz'))[0] == 200
        await client.connect(node.url, transports=['websocket'])
        await client.emit('feed')

        async def send_up():
            for n in range(100_000):
                if not client.connected:
                    return
                try:
                    deliveries[n] = await client.emit('up', n)
                except relio.DeliveryError:
                    return
                await asyncio.sleep(0.005)
        sender = asyncio.create_task(send_up())
        await until(lambda: len(down) >= 50 and len(deliveries) >= 50, 10, 'traffic both ways')

        node.proc.send_signal(signal.SIGTERM)
        await until(lambda: reasons, 15, 'the client told of the end of its session')
        assert await node.wait_exit(15) is not None, 'the node did not exit'
        await asyncio.wait_for(sender, 5)
        await asyncio.sleep(0)          # let the last delivery reports settle

        # The client was told, and did not try to come back.
        assert reasons == ['server disconnect']
        if launcher == 'gunicorn':
            assert 'Booting worker' in node._diagnostics()        # really under gunicorn
        assert not client.connected
        assert node.logged('stopped')

        # Down: everything the server queued arrived, in order, once.
        queued = node.lines('down')
        assert len(queued) >= 50
        assert down == queued == list(range(len(queued)))

        # Up: every message acknowledged to the client was handled once, in order.
        handled = node.lines('up')
        assert handled == list(range(len(handled)))
        acked = [n for n, d in deliveries.items() if d.delivered]
        assert acked and set(acked) <= set(handled)
        # and none is left in limbo: each was acknowledged or its failure reported
        assert all(d.done for d in deliveries.values())
    finally:
        if client.connected:
            await client.disconnect()
        await node.close()


async def test_health_states_while_draining():
    """/readyz turns 503 as soon as the drain starts (/livez stays 200) and both answer 503 once
    stopped; the drain waits for the client's acknowledgements, which a stalled link holds up."""
    sio = relio.AsyncServer(async_mode='asgi')
    health = Health(sio, drain_timeout=30)
    sids: list[str] = []

    @sio.event
    def connect(sid, environ, auth):
        sids.append(sid)

    srv = await start_asgi(socketio.ASGIApp(sio, other_asgi_app=health.app()))
    client = relio.AsyncClient(reconnection=False, handle_sigint=False)
    got: list[int] = []
    client.on('n', got.append)
    try:
        async with FaultProxy(srv.port) as proxy:
            await client.connect(proxy.url, transports=['websocket'])
            assert await get(f'{srv.url}/readyz') == (200, {'status': 'ready', 'sessions': 1,
                                                            'suspended': 0})
            proxy.blackhole('both', 3.0, mode='hold')    # acknowledgements held back for 3 s
            await sio.emit('n', 1, to=sids[0])
            shutdown = asyncio.create_task(health.shutdown())
            await until(lambda: health.state == 'draining', 5, 'draining')
            assert (await get(f'{srv.url}/readyz'))[0] == 503
            assert (await get(f'{srv.url}/livez'))[0] == 200
            assert not shutdown.done()          # waiting for the held acknowledgement
            await asyncio.wait_for(shutdown, 15)
            assert got == [1]                   # delivered before the session ended
            assert (await get(f'{srv.url}/readyz'))[0] == 503
            assert await get(f'{srv.url}/livez') == (503, {'status': 'stopped', 'sessions': 0,
                                                           'suspended': 0})
    finally:
        if client.connected:
            await client.disconnect()
        await srv.stop()


async def test_sigterm_with_redis_hands_sessions_over(tmp_path):
    """Two nodes sharing Redis behind a balancer: SIGTERM on the node holding the session hands
    it over; the client resumes it on the other node (same sid, no ``disconnect``), and nothing
    is lost either way. The other node's /metrics counts the takeover and the resume."""
    async with run_redis() as redis:
        a = GracefulNode(tmp_path, redis.url)
        b = GracefulNode(tmp_path, redis.url)
        await asyncio.gather(a.start(), b.start())
        client = relio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2,
                                   randomization_factor=0.0, handle_sigint=False)
        down: list[int] = []
        reasons: list[str] = []
        deliveries: dict[int, relio.Delivery] = {}
        client.on('down', down.append)

        @client.event
        def disconnect(reason=None):
            reasons.append(str(reason))

        try:
            async with Balancer([a.port, b.port]) as lb:
                await client.connect(lb.url, transports=['websocket'])
                sid = client.get_sid()
                await client.emit('feed')

                async def send_up():
                    for n in range(400):
                        deliveries[n] = await client.emit('up', n)
                        await asyncio.sleep(0.005)
                sender = asyncio.create_task(send_up())
                await until(lambda: len(down) >= 50 and len(deliveries) >= 50, 10,
                            'traffic both ways')
                a.proc.send_signal(signal.SIGTERM)
                assert await a.wait_exit(20) is not None, 'node a did not exit'
                await asyncio.wait_for(sender, 30)
                await until(lambda: all(d.done for d in deliveries.values()), 15,
                            'every message up acknowledged')
                queued = a.lines('down')
                await until(lambda: len(down) == len(queued), 10, 'every message down')

                assert reasons == [] and client.connected and client.get_sid() == sid
                assert a.logged('stopped')
                assert down == queued == list(range(len(queued)))
                assert all(d.delivered for d in deliveries.values())
                handled = a.lines('up') + b.lines('up')
                assert sorted(handled) == list(range(400))          # each once
                assert b.lines('up')                                # the session moved on

                s = await scrape(f'{b.url}/metrics')
                assert s.value('relio_sessions_taken_over_total') == 1
                assert s.value('relio_resumes_total', outcome='resumed') == 1
                assert s.value('relio_sessions', state='connected') == 1
                # every metric docs/OPERATIONS.md and the Grafana dashboard name is served
                for name in documented_metrics():
                    assert s.serves(name), name
                saves = s.value('relio_session_saves_total', outcome='saved')
                assert saves > 0         # durable mode: b saves the session as it goes
                assert s.value('relio_session_save_duration_seconds_count') == saves
                # b counts what its engine received, not what the session had received on a.
                # A message a received whose handler had not run yet when it handed over is run
                # on b from the session's record (durable mode), without b receiving it again.
                received_on_b = s.value('relio_messages_received_total')
                assert len(b.lines('up')) - 1 <= received_on_b <= len(b.lines('up'))
        finally:
            if client.connected:
                await client.disconnect()
            await asyncio.gather(a.close(), b.close())
