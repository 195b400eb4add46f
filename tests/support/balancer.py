"""Round-robin TCP load balancer on 127.0.0.1 for multi-node tests.

    async with Balancer([port1, port2, port3]) as lb:
        url = lb.url                     # 'http://127.0.0.1:<lb.port>'
        lb.connections_to                # {upstream_port: connections forwarded}
        lb.failed_attempts               # {upstream_port: connect attempts that failed}

Every accepted client connection goes to the next upstream in turn; if connecting to it fails
(a killed node refuses), the following upstreams are tried, so dead nodes are skipped.  Bytes
are piped both ways; when either side closes (or errors), the other side is closed too.  There
is no stickiness: use the websocket transport (one TCP connection per engine.io session).
``lb.upstreams`` may be changed while it runs (an empty list refuses every client connection, as a
balancer with every node out of rotation does).
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

__all__ = ['Balancer']

_HOST = '127.0.0.1'
_MAX_CHUNKS = 50_000_000  # per direction per connection: keeps every loop bounded


class Balancer:
    def __init__(self, upstream_ports: Iterable[int], *, connect_timeout: float = 2.0) -> None:
        self.upstreams: list[int] = list(upstream_ports)
        if not self.upstreams:
            raise ValueError('at least one upstream port is required')
        self.connect_timeout = connect_timeout
        self.connections_to: dict[int, int] = {p: 0 for p in self.upstreams}
        self.failed_attempts: dict[int, int] = {p: 0 for p in self.upstreams}
        self.accepted = 0
        self.rejected = 0            # no upstream reachable
        self._next = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, 'balancer not started'
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f'http://{_HOST}:{self.port}'

    @property
    def live_connections(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, _HOST, 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(w.wait_closed(), 1)
        self._writers.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> Balancer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def cut(self) -> int:
        """Close every live client connection (both sides); returns how many were open."""
        n = len(self._tasks)
        for w in list(self._writers):
            w.close()
        return n

    # -- internals ------------------------------------------------------------------------
    async def _open_upstream(self):
        n = len(self.upstreams)
        if n == 0:
            return None          # every node out of rotation: connections are refused
        start = self._next
        self._next = (self._next + 1) % n
        for i in range(n):
            port = self.upstreams[(start + i) % n]
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(_HOST, port),
                                              self.connect_timeout)
            except (OSError, asyncio.TimeoutError):
                self.failed_attempts[port] = self.failed_attempts.get(port, 0) + 1
                continue
            self.connections_to[port] = self.connections_to.get(port, 0) + 1
            return port, r, w
        return None

    async def _accept(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(cwriter)
        self.accepted += 1
        uwriter = None
        try:
            up = await self._open_upstream()
            if up is None:
                self.rejected += 1
                return
            _, ureader, uwriter = up
            self._writers.add(uwriter)
            pipes = [asyncio.create_task(self._pipe(creader, uwriter)),
                     asyncio.create_task(self._pipe(ureader, cwriter))]
            try:
                # either direction ending (EOF / error) tears down both sides
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for p in pipes:
                    p.cancel()
                await asyncio.wait(pipes, timeout=2)
        except asyncio.CancelledError:
            pass
        finally:
            for w in (cwriter, uwriter):
                if w is None:
                    continue
                w.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(w.wait_closed(), 1)
                self._writers.discard(w)
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            for _ in range(_MAX_CHUNKS):
                data = await reader.read(65536)
                if not data:
                    return
                writer.write(data)
                await writer.drain()
