"""One managed OS process for tests: launch, wait until ready, signals, bounded waits, always
reaped.

``tests/support/redis_server.py`` (a redis-server) and ``tests/support/nodes.py`` (a Socket.IO
server node) build on :class:`ManagedProcess`; what differs is the command, how readiness is checked
(``_ready``) and what to show when it fails (``_diagnostics``). :func:`free_port` gives each of them
a port of its own.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess

__all__ = ['ManagedProcess', 'free_port']

_HOST = '127.0.0.1'
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


class ManagedProcess:
    """Subclasses set ``label`` and ``startup_timeout`` and implement ``args()``, ``_ready()`` and
    ``_diagnostics()``; ``_launch(cwd, env, capture_path)`` starts it with stdout+stderr appended
    to ``capture_path``."""

    label = 'process'

    def __init__(self, startup_timeout: float) -> None:
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._capture = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def args(self) -> list[str]:
        raise NotImplementedError

    async def _ready(self) -> bool:
        raise NotImplementedError

    def _diagnostics(self) -> str:
        return ''

    async def _launch(self, cwd: str, env: dict | None, capture_path: str) -> None:
        """Start the process; return once ``_ready()`` (bounded by ``startup_timeout``)."""
        if self.running:
            raise RuntimeError(f'{self.label} is already running')
        if self._capture is None:
            self._capture = open(capture_path, 'ab')
        self.proc = subprocess.Popen(self.args(), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._capture, stderr=subprocess.STDOUT)
        self.starts += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        for _ in range(int(self.startup_timeout / 0.02) + 1):
            if self.proc.poll() is not None:
                raise RuntimeError(f'{self.label} exited with {self.proc.returncode} at start:\n'
                                   + self._diagnostics())
            if await self._ready():
                return
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.02)
        await self.kill()
        raise RuntimeError(f'{self.label} was not ready within {self.startup_timeout}s:\n'
                           + self._diagnostics())

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

    async def kill(self) -> None:
        """SIGKILL and reap (bounded)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        if not await self._wait_exit(5.0):  # pragma: no cover - SIGKILL is not ignorable
            raise RuntimeError(f'{self.label} pid {self.proc.pid} survived SIGKILL')

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (after SIGCONT: a paused process cannot handle it), wait up to ``timeout``,
        then SIGKILL."""
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        if not await self._wait_exit(timeout):
            await self.kill()

    def pause(self) -> None:
        """SIGSTOP: frozen, its TCP connections stay open."""
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGCONT)

    async def _reap(self) -> None:
        """Always SIGKILL (after SIGCONT) and close the capture file."""
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
            if self._capture is not None:
                self._capture.close()
                self._capture = None

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        await self._reap()

    async def __aenter__(self):
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
