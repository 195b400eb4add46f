"""Run real uvicorn ASGI servers on 127.0.0.1 inside the test's event loop.

    async with serve_asgi(app) as port: ...                    # any ASGI app
    async with serve_socketio(sio) as port: ...     # socketio.ASGIApp(sio), then sio.shutdown()
    srv = await start_asgi(app); srv.port; srv.url; await srv.stop()
    async with echo_server() as port: ...           # a raw TCP echo server (no uvicorn)

The server binds port 0 (ephemeral, no races) and the real port is read from the listening
socket.  ws='wsproto' is used by default: it is installed and raises no deprecation warnings
(pyproject sets filterwarnings=error); uvicorn's own websocket keepalive pings are disabled
so engine.io's heartbeat is the only one, and per-message-deflate is off (binary payloads).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

__all__ = ['RunningServer', 'start_asgi', 'serve_asgi', 'serve_socketio', 'echo_server']

_DEFAULTS: dict[str, Any] = dict(
    ws='wsproto',
    ws_ping_interval=None,
    ws_ping_timeout=None,
    ws_per_message_deflate=False,
    lifespan='off',
    log_level='warning',
    access_log=False,
    timeout_graceful_shutdown=2,
    timeout_keep_alive=5,
)


class _Server(uvicorn.Server):
    """uvicorn.Server that leaves signal handling to pytest."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class RunningServer:
    def __init__(self, server: uvicorn.Server, task: asyncio.Task):
        self.server = server
        self.task = task

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    async def stop(self, timeout: float = 5.0) -> None:
        """Graceful shutdown (closes websockets with 1012), forced after ``timeout``."""
        if self.task.done():
            self.task.result() if not self.task.cancelled() else None
            return
        self.server.should_exit = True
        done, _ = await asyncio.wait([self.task], timeout=timeout)
        if not done:
            self.server.force_exit = True
            done, _ = await asyncio.wait([self.task], timeout=2.0)
        if not done:
            self.task.cancel()
            await asyncio.wait([self.task], timeout=2.0)
        if self.task.done() and not self.task.cancelled():
            self.task.result()


async def start_asgi(app: Any, *, host: str = '127.0.0.1', port: int = 0,
                     startup_timeout: float = 10.0, **uvicorn_kwargs: Any) -> RunningServer:
    if host != '127.0.0.1':
        raise ValueError('test servers bind 127.0.0.1 only')
    kwargs = {**_DEFAULTS, **uvicorn_kwargs}
    config = uvicorn.Config(app, host=host, port=port, **kwargs)
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + startup_timeout
    for _ in range(int(startup_timeout / 0.01) + 1):
        if server.started or task.done() or loop.time() > deadline:
            break
        await asyncio.sleep(0.01)
    if not server.started:
        if task.done():
            exc = task.exception() if not task.cancelled() else None
            raise RuntimeError(f'uvicorn failed to start: {exc!r}') from exc
        server.should_exit = server.force_exit = True
        task.cancel()
        await asyncio.wait([task], timeout=2.0)
        raise RuntimeError('uvicorn did not start in time')
    return RunningServer(server, task)


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, **kwargs: Any) -> AsyncIterator[int]:
    """Serve ``app`` on 127.0.0.1:<free port>; yields the port."""
    srv = await start_asgi(app, **kwargs)
    try:
        yield srv.port
    finally:
        await srv.stop()


@contextlib.asynccontextmanager
async def serve_socketio(sio: Any, *, socketio_path: str = 'socket.io',
                         **kwargs: Any) -> AsyncIterator[int]:
    """Serve a socketio.AsyncServer(async_mode='asgi') through socketio.ASGIApp; yields the port.
    On exit: sio.shutdown() (stops the engine.io service task), then uvicorn shutdown."""
    import socketio

    app = socketio.ASGIApp(sio, socketio_path=socketio_path)
    srv = await start_asgi(app, **kwargs)
    try:
        yield srv.port
    finally:
        try:
            await asyncio.wait_for(sio.shutdown(), 5)
        except (asyncio.TimeoutError, Exception):  # pragma: no cover - best effort
            logging.getLogger(__name__).exception('sio.shutdown() failed')
        await srv.stop()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1:<free port> that sends back whatever it receives; yields the
    port. Each connection is aborted once its client closes (or resets) it."""
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100_000):
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(echo, '127.0.0.1', 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def numbered_frame(n: int, size: int) -> bytes:
    """Frame ``n`` of :func:`websocket_frame_server`: its number, then bytes derived from it."""
    import hashlib
    head = n.to_bytes(8, 'big')
    block = hashlib.sha256(head).digest()
    return head + (block * (size // len(block) + 1))[:size - 8]


def websocket_frame_header(length: int, opcode: int = 0x2, mask: bytes = b'') -> bytes:
    """The header of a final websocket frame of ``length`` payload bytes (RFC 6455 section 5.2)."""
    masked = 0x80 if mask else 0
    if length < 126:
        head = bytes((0x80 | opcode, masked | length))
    elif length < 65536:
        head = bytes((0x80 | opcode, masked | 126)) + length.to_bytes(2, 'big')
    else:
        head = bytes((0x80 | opcode, masked | 127)) + length.to_bytes(8, 'big')
    return head + mask


@contextlib.asynccontextmanager
async def websocket_frame_server(count: int, size: int,
                                 interval: float = 0.0) -> AsyncIterator[int]:
    """A minimal websocket server (RFC 6455 handshake, then unmasked binary frames) on
    127.0.0.1:<free port> that sends each connection :func:`numbered_frame` 0..count-1, one every
    ``interval`` seconds, and waits for it to close; yields the port."""
    import base64
    import hashlib

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b'\r\n\r\n')
            key = next(line.split(b':', 1)[1].strip() for line in head.split(b'\r\n')
                       if line.lower().startswith(b'sec-websocket-key:'))
            accept = base64.b64encode(hashlib.sha1(
                key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())
            writer.write(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                         b'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')
            for n in range(count):
                payload = numbered_frame(n, size)
                writer.write(websocket_frame_header(len(payload)) + payload)
                await writer.drain()
                await asyncio.sleep(interval)
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError, StopIteration):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(serve, '127.0.0.1', 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
