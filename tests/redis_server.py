"""A real ``redis-server`` process on 127.0.0.1 for multi-node tests.

    async with run_redis() as redis:                    # free port, private temp dir
        redis.url                                       # 'redis://127.0.0.1:<port>/0'
        await redis.stop()                              # SIGTERM, wait for exit (AOF flushed)
        await redis.start()                             # same port + dir: AOF reloaded, PING answers
        await redis.kill()                              # SIGKILL (AOF as fsynced so far)
        redis.pause(); redis.resume()                   # SIGSTOP / SIGCONT: connections stay open

The server runs with ``--save ''`` (no RDB snapshots), ``--appendonly yes`` and
``--appendfsync <appendfsync>`` (default 'everysec'), ``--protected-mode no``, bound to
127.0.0.1 only.  Readiness is checked by sending ``PING`` over a raw socket (no client
library state), with a bounded deadline.  ``redis-server`` must be on PATH (CI installs it);
otherwise :class:`RedisNotInstalled` is raised -- tests are never silently skipped.
The process is always SIGKILLed on context exit and the temp dir removed.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from typing import AsyncIterator

__all__ = ['RedisServer', 'RedisNotInstalled', 'run_redis', 'free_port', 'redis_server_binary']

_HOST = '127.0.0.1'


class RedisNotInstalled(RuntimeError):
    pass


def redis_server_binary() -> str:
    path = shutil.which('redis-server')
    if path is None:
        raise RedisNotInstalled(
            'redis-server is not on PATH: the multi-node tests need a real Redis '
            '(apt-get install redis-server; .ci/run installs it)')
    return path


_handed_out: set[int] = set()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind port 0, read it, close).  Never returns the
    same port twice in one process, so several servers started together cannot collide."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((_HOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError('could not find a fresh free port')  # pragma: no cover


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


class RedisServer:
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
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log = None

    # -- properties ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f'redis://{_HOST}:{self.port}/0'

    @property
    def logfile(self) -> str:
        return os.path.join(self.dir, 'redis.log')

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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
        if self.running:
            raise RuntimeError('redis-server is already running')
        if self._log is None:
            self._log = open(self.logfile, 'ab')
        self.proc = subprocess.Popen(self.args(), cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.starts += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        for _ in range(int(self.startup_timeout / 0.02) + 1):
            if self.proc.poll() is not None:
                raise RuntimeError(f'redis-server exited with {self.proc.returncode} at start:\n'
                                   + self.log_tail())
            if await _ping(self.port):
                return
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.02)
        await self.kill()
        raise RuntimeError(f'redis-server did not answer PING within {self.startup_timeout}s:\n'
                           + self.log_tail())

    async def _wait_exit(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for _ in range(int(timeout / 0.01) + 1):
            if self.proc is None or self.proc.poll() is not None:
                return True
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.01)
        return self.proc.poll() is not None

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (redis flushes the AOF and exits), wait bounded; SIGKILL if it hangs."""
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)   # a paused server cannot handle SIGTERM
            self.proc.send_signal(signal.SIGTERM)
        if not await self._wait_exit(timeout):
            await self.kill()

    async def kill(self) -> None:
        """SIGKILL and reap (bounded)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        if not await self._wait_exit(5.0):  # pragma: no cover - SIGKILL is not ignorable
            raise RuntimeError(f'redis-server pid {self.proc.pid} survived SIGKILL')

    def pause(self) -> None:
        """SIGSTOP: the server freezes, TCP connections stay open (writes hang, no errors)."""
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGCONT)

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
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGCONT)
                    self.proc.kill()
                with contextlib.suppress(Exception):
                    await self._wait_exit(5.0)
                if self.proc.poll() is None:  # pragma: no cover
                    self.proc.wait(5)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)

    async def __aenter__(self) -> 'RedisServer':
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = 'running' if self.running else 'stopped'
        return f'<RedisServer {self.url} {state} starts={self.starts}>'


@contextlib.asynccontextmanager
async def run_redis(**opts) -> AsyncIterator[RedisServer]:
    """``async with run_redis(appendfsync='always') as redis: ...`` (see RedisServer)."""
    async with RedisServer(**opts) as server:
        yield server
