"""Socket.IO server nodes as separate OS processes (tests/support/multinode_app.py) for multi-node
tests.

    node = await start_node(redis.url, mode='socketio', name='n1', datadir=tmp_path)
    node = Node(redis.url, mode='relio', redis_mode='fast'|'durable'|'default', ...)
    node = Node(redis.url, mode='relio-sync'|'flask', ...)   # thread-based (werkzeug) nodes
    node.port; node.url                      # 'http://127.0.0.1:<port>'
    node.pause(); node.resume()              # SIGSTOP / SIGCONT
    await node.kill()                        # SIGKILL (no goodbye: sockets reset by the kernel)
    await node.stop()                        # SIGTERM, bounded wait, then SIGKILL
    await node.restart()                     # start again on the same port (after kill/stop)
    node.received()                          # [(sid, n), ...] lines the `m` handler logged
    node.calls()                             # [(sid, n), ...] lines the `work` handler logged
    node.events('connect'|'disconnect'|'resume')   # [sid, ...] lifecycle lines logged
    node.stderr_text()                       # the node's captured stdout+stderr
    node.final_stats()                       # a relio node's manager counters, printed at shutdown

    async with run_nodes(redis.url, 3, mode='socketio', datadir=tmp_path) as nodes: ...

Each node's stdout+stderr goes to DATADIR/<name>.stderr; every started process is SIGKILLed
when the context exits (or on ``close()``), so nothing outlives a test.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.processes import ManagedProcess, free_port

__all__ = ['Node', 'start_node', 'run_nodes', 'REPO_ROOT']

REPO_ROOT = str(Path(__file__).resolve().parents[2])
_HOST = '127.0.0.1'


async def _port_open(port: int, timeout: float = 0.5) -> bool:
    writer = None
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(_HOST, port), timeout)
        return True
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout)


class Node(ManagedProcess):
    def __init__(self, redis_url: str, *, mode: str = 'socketio', name: str = 'n1',
                 datadir: str | os.PathLike, port: int | None = None,
                 startup_timeout: float = 20.0, extra_env: dict | None = None,
                 redis_mode: str = 'default') -> None:
        if mode not in ('relio', 'relio-sync', 'flask', 'socketio'):
            raise ValueError(f'mode must be relio, relio-sync, flask or socketio, not {mode!r}')
        if redis_mode not in ('fast', 'durable', 'default'):
            raise ValueError(f'redis_mode must be fast, durable or default, not {redis_mode!r}')
        self.redis_mode = redis_mode
        self.redis_url = redis_url
        self.mode = mode
        self.name = name
        self.datadir = str(datadir)
        self.port = port or free_port()
        super().__init__(startup_timeout)
        self.label = f'node {name}'
        self.extra_env = dict(extra_env or {})
        os.makedirs(self.datadir, exist_ok=True)

    @property
    def url(self) -> str:
        return f'http://{_HOST}:{self.port}'

    @property
    def logfile(self) -> str:
        return os.path.join(self.datadir, f'{self.name}.log')

    @property
    def stderr_file(self) -> str:
        return os.path.join(self.datadir, f'{self.name}.stderr')

    def args(self) -> list[str]:
        return [sys.executable, '-m', 'tests.support.multinode_app', '--port', str(self.port),
                '--redis', self.redis_url, '--mode', self.mode, '--name', self.name,
                '--datadir', self.datadir, '--redis-mode', self.redis_mode]

    async def start(self) -> None:
        """Launch the process; returns when its port accepts TCP connections (bounded)."""
        env = dict(os.environ)
        pp = env.get('PYTHONPATH')
        env['PYTHONPATH'] = REPO_ROOT + (os.pathsep + pp if pp else '')
        env['PYTHONUNBUFFERED'] = '1'
        env.update(self.extra_env)
        await self._launch(REPO_ROOT, env, self.stderr_file)

    async def _ready(self) -> bool:
        return await _port_open(self.port)

    def _diagnostics(self) -> str:
        return self.stderr_text()[-3000:]

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM (graceful shutdown: uvicorn's, or the thread-based node's), wait up to
        ``timeout``, then SIGKILL."""
        await super().stop(timeout)

    _KEYWORDS = ('call', 'connect', 'disconnect', 'resume')

    def log_lines(self) -> list[list[str]]:
        """Every complete line of the node's log, split on spaces (a line cut short by a
        SIGKILL has no newline yet and is left out)."""
        try:
            with open(self.logfile, encoding='utf-8') as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return [line.split(' ') for line in text.split('\n')[:-1] if line]

    def received(self) -> list[tuple[str, str]]:
        """Lines logged by the node's ``m`` handler, as (sid, n-as-text) tuples."""
        return [(p[0], p[1]) for p in self.log_lines()
                if len(p) == 2 and p[0] not in self._KEYWORDS]

    def calls(self) -> list[tuple[str, str]]:
        """Lines logged by the node's ``work`` handler, as (sid, n-as-text) tuples."""
        return [(p[1], p[2]) for p in self.log_lines() if len(p) == 3 and p[0] == 'call']

    def events(self, kind: str) -> list[str]:
        """Sids of the lifecycle lines ``kind`` ('connect', 'disconnect', 'resume') logged."""
        return [p[1] for p in self.log_lines() if len(p) == 2 and p[0] == kind]

    def final_stats(self) -> list[dict]:
        """The manager counters a relio node printed after each graceful shutdown (``relio-stats
        <json>`` lines of its stderr), oldest first."""
        import json
        return [json.loads(line[len('relio-stats '):])
                for line in self.stderr_text().splitlines() if line.startswith('relio-stats ')]

    def stderr_text(self) -> str:
        try:
            with open(self.stderr_file, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    async def close(self) -> None:
        """Always SIGKILL (after SIGCONT, in case it is paused) and close the capture file."""
        await self._reap()

    def __repr__(self) -> str:
        return (f'<Node {self.name} {self.mode} {self.url} pid={self.pid} '
                f'{"running" if self.running else "down"}>')


async def start_node(redis_url: str, *, mode: str = 'socketio', name: str = 'n1',
                     datadir: str | os.PathLike, port: int | None = None,
                     **kwargs) -> Node:
    """Start one node and return it (caller must ``await node.close()``)."""
    node = Node(redis_url, mode=mode, name=name, datadir=datadir, port=port, **kwargs)
    try:
        await node.start()
    except BaseException:
        await node.close()
        raise
    return node


@contextlib.asynccontextmanager
async def run_nodes(redis_url: str, count: int, *, mode: str = 'socketio',
                    datadir: str | os.PathLike, prefix: str = 'n',
                    **kwargs) -> AsyncIterator[list[Node]]:
    """Start ``count`` nodes concurrently (names n1..nN); all are SIGKILLed on exit."""
    nodes = [Node(redis_url, mode=mode, name=f'{prefix}{i + 1}', datadir=datadir, **kwargs)
             for i in range(count)]
    try:
        results = await asyncio.gather(*(n.start() for n in nodes), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        yield nodes
    finally:
        await asyncio.gather(*(n.close() for n in nodes), return_exceptions=True)
