"""Hostile peers against the real relio server (issue 5).

Every test runs relio.AsyncServer on uvicorn (127.0.0.1) with a well-behaved relio.AsyncClient (the
"victim") connected before the attack, then attacks with tests.support.hostile.HostilePeer, a
hand-driven engine.io/socket.io/relio client that can send anything. Afterwards each test checks
that

(a) the server is fine: no ERROR log from any logger (an exception escaping relio's handling
    would be logged by engine.io as "message async handler error"), its tables are consistent;
(b) the victim's session still works: emit + call round trips both ways, same sid, no resume, no
    suspend, nothing lost or duplicated, its get_session data untouched (Victim.round);
(c) what the server holds for the attacker is bounded: session_stats fields within the Config
    limits, relio_sessions / relio_parked_sessions, and where it applies tracemalloc growth under a
    stated bound.

Measured numbers quoted in docs/SECURITY.md are printed by the tests (run with -s to see them).
"""
from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import gc
import json
import logging
import os
import random
import re
import tracemalloc
import weakref
from typing import Any, Callable

import aiohttp
import pytest

import relio
from relio.binding.sessions import UNKNOWN_SESSION
from relio.engine import _frames as F
from relio.binding import wire
from relio.demo.faultproxy import FaultProxy
from tests.support.frames import raw_ack, raw_data, varint
from tests.support.hostile import HostilePeer, PeerClosed, app_payload
from tests.support.servers import serve_socketio
from tests.support.waiting import poll, until

CLIENT_KW = dict(reconnection_delay=0.1, reconnection_delay_max=0.3, randomization_factor=0,
                 handle_sigint=False)
V = bytes((F.VERSION,))          # the batch version byte
D = relio.DEFAULT_CONFIG         # the limits the malformed-input test runs with
# The files of the relio package that is imported (not '*/relio/*': a checkout in a folder named
# relio would count the tests and everything else in it too).
RELIO_FILES = os.path.join(os.path.dirname(os.path.abspath(relio.__file__)), '*')


# ------------------------------------------------------------------------------------------ helpers

@pytest.fixture(autouse=True)
def _collect_garbage():
    yield
    gc.collect()


@pytest.fixture
def logs(caplog):
    """caplog with relio's INFO and up captured (relio logs session ends at WARNING/INFO)."""
    caplog.set_level(logging.INFO, logger='relio')
    return caplog


def relio_messages(caplog, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == 'relio' and r.levelno >= level]


def assert_no_errors(caplog) -> None:
    """Nothing logged at ERROR or above by anyone (engine.io logs an exception escaping a message
    handler as 'message async handler error'; asyncio logs unretrieved task exceptions)."""
    errors = [f'{r.name}: {r.getMessage()}' for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors


class Arena:
    """A relio server with recording handlers."""

    def __init__(self, config: relio.Config | None = None, **server_kw: Any):
        self.config = config or relio.DEFAULT_CONFIG
        sio = self.sio = relio.AsyncServer(async_mode='asgi', relio_config=config, **server_kw)
        self.records: dict[str, list] = collections.defaultdict(list)
        self.connects: list[str] = []
        self.disconnects: list[tuple[str, Any]] = []
        self.disconnected: collections.Counter = collections.Counter()    # sid -> how often
        self.disconnected_at: dict[str, float] = {}                         # sid -> loop time
        self.suspends: list[str] = []
        self.resumes: list[str] = []
        self.gate = asyncio.Event()
        self.slow_running = 0
        self.slow_max = 0
        self.counted = 0
        self.port = 0

        @sio.event
        async def connect(sid, environ, auth):
            self.connects.append(sid)
            await sio.save_session(sid, {'name': auth.get('name') if isinstance(auth, dict)
                                         else None})

        @sio.event
        async def disconnect(sid, reason):
            self.disconnects.append((sid, reason))
            self.disconnected[sid] += 1
            self.disconnected_at.setdefault(sid, asyncio.get_running_loop().time())

        @sio.on('relio_suspend')
        async def on_suspend(sid, reason):
            self.suspends.append(sid)

        @sio.on('relio_resume')
        async def on_resume(sid, environ, auth):
            self.resumes.append(sid)

        @sio.on('record')
        def record(sid, item):
            self.records[sid].append(item)

        @sio.on('echo')
        def echo(sid, data=None):
            return data

        @sio.on('count')
        def count(sid, *args):
            self.counted += 1

        @sio.on('join')
        async def join(sid, room):
            await sio.enter_room(sid, room)
            return 'ok'

        @sio.on('slow')
        async def slow(sid, data=None):
            self.slow_running += 1
            self.slow_max = max(self.slow_max, self.slow_running)
            try:
                await self.gate.wait()
            finally:
                self.slow_running -= 1
            return data

    def disconnect_count(self, sid: str) -> int:
        return self.disconnected[sid]

    def reason(self, sid: str) -> Any:
        return next((r for s, r in self.disconnects if s == sid), None)

    def assert_consistent(self) -> None:
        """relio's tables agree with each other and with python-socketio's."""
        sio = self.sio
        registry = sio.relio_registry
        registry.check()
        refs = {session.eio_sid for session in registry}
        assert set(sio.environ) <= set(sio.eio.sockets) | refs
        assert sio.relio_parked_sessions == sum(not s.attached for s in registry)
        for ns, rooms in sio.manager.rooms.items():
            for sid, eio_sid in rooms.get(None, {}).items():
                session = registry.get(sid)
                if session is not None:
                    assert session.eio_sid == eio_sid
                else:      # a plain client, or a relio session python-socketio is still closing
                    assert eio_sid in sio.eio.sockets or sid in sio.manager.pending_disconnect.get(
                        ns, ()), (sid, eio_sid)

    def assert_bounded(self, sid: str, *, awaiting: int = 0) -> dict | None:
        """The attacker's session (if alive) holds no more than the Config allows."""
        cfg = self.config
        st = self.sio.session_stats(sid)
        if st is None:
            assert sid not in self.sio.relio_registry
            return None
        assert st['outbox_messages'] <= cfg.max_outbox_messages
        assert st['outbox_bytes'] <= cfg.max_outbox_bytes
        assert st['in_flight_frames'] <= cfg.max_inflight_messages
        assert st['held_bytes'] <= cfg.max_reorder_bytes
        assert st['held_frames'] < cfg.receive_window
        assert st['reassembly_bytes'] <= cfg.max_reassembly_bytes + cfg.max_message_size
        assert st['cached_responses'] <= cfg.response_cache_entries
        assert st['awaiting_replies'] <= awaiting
        pending = len(self.sio.relio_registry.get(sid).channel.engine.awaiting_reply)
        assert pending <= cfg.max_pending_requests, pending
        return st


class Victim:
    """A well-behaved relio client connected before the attack; ``round()`` proves it unharmed."""

    def __init__(self, arena: Arena):
        self.arena = arena
        self.client = relio.AsyncClient(**CLIENT_KW)
        self.got: list = []              # 'push' events received, in order
        self.sent: list = []             # what it sent with 'record'
        self.pushed: list = []           # what the server pushed to it
        self.suspends = 0
        self.disconnects = 0
        self.sid: str | None = None
        self.rounds = 0
        client = self.client
        client.on('push', self.got.append)
        client.on('cecho', lambda data: data)

        @client.on('relio_suspend')
        def on_suspend(reason):
            self.suspends += 1

        @client.event
        def disconnect(reason):
            self.disconnects += 1

    async def start(self) -> None:
        await self.client.connect(f'http://127.0.0.1:{self.arena.port}', transports=['websocket'],
                                  auth={'name': 'victim'}, wait_timeout=5)
        self.sid = self.client.get_sid()
        await until(lambda: self.sid in self.arena.connects, what='victim connect')
        await self.round()

    async def round(self) -> None:
        """Five emits and a call each way; everything in order, exactly once, same session.

        The client's emits come last and their deliveries are awaited: the server then owes the
        client nothing (no delayed ACK), so a disconnect right after a round races with no batch
        from the server (see the client-side note in docs/SECURITY.md)."""
        sio, client, sid = self.arena.sio, self.client, self.sid
        self.rounds += 1
        tag = f'r{self.rounds}'
        for i in range(5):
            item = f'{tag}-s{i}'
            self.pushed.append(item)
            await asyncio.wait_for(await sio.emit('push', item, to=sid), 10)
        assert await sio.call('cecho', tag, to=sid, timeout=10) == tag
        assert await client.call('echo', {'tag': tag}, timeout=10) == {'tag': tag}
        for i in range(5):
            item = f'{tag}-{i}'
            self.sent.append(item)
            await asyncio.wait_for(await client.emit('record', item), 10)
        await until(lambda: len(self.got) >= len(self.pushed), what='pushes')
        assert self.got == self.pushed
        assert self.arena.records[sid] == self.sent
        assert client.connected and client.get_sid() == sid
        st = sio.session_stats(sid)
        assert st is not None and st['connected'] and st['resumes'] == 0
        assert st['outbox_messages'] == 0 and st['awaiting_replies'] == 0
        assert await sio.get_session(sid) == {'name': 'victim'}
        assert self.suspends == 0 and self.disconnects == 0
        assert sid not in self.arena.suspends and self.arena.disconnect_count(sid) == 0

    async def stop(self) -> None:
        client = self.client
        with contextlib.suppress(Exception):
            if client.connected:
                await asyncio.wait_for(client.disconnect(drain_timeout=0), 5)
        task = client._reconnect_task
        if task is not None and not task.done():
            client._reconnect_abort.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        with contextlib.suppress(Exception):
            if client.eio.state != 'disconnected':
                await asyncio.wait_for(client.eio.disconnect(), 5)
        http = getattr(client.eio, 'http', None)
        if http is not None and not http.closed:
            await http.close()


@contextlib.asynccontextmanager
async def arena(config: relio.Config | None = None, **server_kw: Any):
    """A served Arena with its Victim connected; the victim is checked once more on exit."""
    a = Arena(config, **server_kw)
    async with serve_socketio(a.sio) as port:
        a.port = port
        victim = a.victim = Victim(a)
        try:
            await victim.start()
            yield a
            await victim.round()
            a.assert_consistent()
        finally:
            await victim.stop()


@contextlib.asynccontextmanager
async def peers():
    """HostilePeers opened with ``await make()``, all closed on exit."""
    opened: list[HostilePeer] = []

    async def make(**kw: Any) -> HostilePeer:
        peer = HostilePeer(kw.pop('port'), **kw)
        opened.append(peer)
        await peer.open()
        return peer
    try:
        yield make
    finally:
        for peer in opened:
            await peer.close()


@contextlib.asynccontextmanager
async def aiohttp_session():
    """One aiohttp session (unlimited connections) shared by many HostilePeers."""
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        yield http
    finally:
        await http.close()


class Traced:
    """tracemalloc over a block: ``grown()`` is traced memory now minus at start (after a full
    collection both times), in bytes."""

    def __enter__(self) -> 'Traced':
        self.started = not tracemalloc.is_tracing()
        if self.started:
            tracemalloc.start()
        gc.collect()
        self.base = tracemalloc.get_traced_memory()[0]
        return self

    def grown(self) -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - self.base

    def snapshot(self) -> tracemalloc.Snapshot:
        gc.collect()
        return tracemalloc.take_snapshot()

    @staticmethod
    def grown_in(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, pattern: str) -> int:
        """Growth of the memory allocated by code in files matching ``pattern`` (the allocating
        line only: tracemalloc keeps one frame here, deeper tracebacks cost too much time).
        :data:`RELIO_FILES` matches relio's own code, wherever the checkout is."""
        keep = [tracemalloc.Filter(True, pattern)]
        return sum(stat.size_diff for stat in
                   after.filter_traces(keep).compare_to(before.filter_traces(keep), 'filename'))

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            tracemalloc.stop()


# ------------------------------------------------------------------------ 1. malformed input


def carrier(batch: bytes, namespace: str = '/') -> bytes:
    return wire.carrier_prefix(namespace) + batch


ID = bytes(range(16))
ID2 = bytes(range(16, 32))


def _non_minimal(peer: HostilePeer) -> bytes:
    """seq 0 and the payload length in 8- and 4-byte varints (valid), then seq 0 again with
    another id (a duplicate by seq: dropped unseen)."""
    payload = app_payload(['record', 'non-minimal'])
    frame = bytes((F.DATA, 0)) + varint(0, 8) + ID + varint(len(payload), 4) + payload
    peer.ns['/'].next_seq = 1
    return V + frame + raw_data(0, ID2, app_payload(['record', 'duplicate']))

# (name, build(peer) -> [engine.io binary messages], outcome, reason in the log)
#   close:  the attacker's relio session is closed with a CLOSE (code 1) carrying the reason
#   drop:   the attacker's engine.io connection is closed (its sessions are parked); relio logs it
#   limit:  engine.io's own size limit closes the connection (python-engineio, no relio log)
#   ignore: nothing ends; the session still works afterwards
MALFORMED: list[tuple[str, Callable[[HostilePeer], list[bytes]], str, str | None]] = [
    ('version byte only', lambda p: [carrier(V)], 'close',
     'truncated batch: shorter than a version byte and one frame'),
    ('truncated DATA frame', lambda p: [carrier(F.encode_batch([p.data(['record', 'x'])])[:-4])],
     'close', 'truncated frame'),
    ('truncated id', lambda p: [carrier(V + bytes((F.DATA, 0, 0)) + b'\x01' * 5)], 'close',
     'truncated frame: message id needs 16 bytes'),
    ('wrong version byte', lambda p: [carrier(b'\x02' + p.data(['record', 'x']))], 'close',
     'unsupported protocol version 2'),
    ('version byte zero', lambda p: [carrier(b'\x00' + p.data(['record', 'x']))], 'close',
     'unsupported protocol version 0'),
    ('batch over max_batch_size', lambda p: [carrier(F.encode_batch([
        p.data(payload=b'\x00' + b' ' * D.max_batch_size)]))], 'close',
     f'exceeds the {D.max_batch_size} allowed'),
    ('payload length past the batch', lambda p: [carrier(V + raw_data(
        0, ID, b'x' * 10, length=100))], 'close',
     'truncated frame: payload length 100 exceeds the 10 bytes left'),
    ('varint announcing more bytes than left', lambda p: [carrier(V + bytes((F.DATA, 0, 0xC0)))],
     'close', 'truncated frame: sequence number needs 8 bytes'),
    ('trailing garbage after a frame', lambda p: [carrier(F.encode_batch([
        p.data(['record', 'trailing'])]) + b'\x07')], 'close', 'unknown frame type 0x07'),
    ('unknown DATA flags', lambda p: [carrier(V + raw_data(0, ID, b'x', flags=0x08))], 'close',
     'unknown DATA flags 0x08'),
    ('more frames than max_frames_per_batch', lambda p: [carrier(
        V + F.encode_ack(0) * (D.max_frames_per_batch + 1))],
     'close', f'batch holds more than {D.max_frames_per_batch} frames'),
    ('chunk total zero', lambda p: [carrier(V + raw_data(0, ID, b'x', flags=F.CHUNK, total=0,
                                                         offset=0))],
     'close', 'chunk of an empty message'),
    ('empty chunk', lambda p: [carrier(V + raw_data(0, ID, b'', flags=F.CHUNK, total=10,
                                                    offset=0))],
     'close', 'empty chunk'),
    ('chunk overruns its total', lambda p: [carrier(V + raw_data(
        0, ID, b'xyz', flags=F.CHUNK, total=10, offset=8))], 'close', 'overruns its message'),
    ('chunk offset beyond total', lambda p: [carrier(V + raw_data(
        0, ID, b'x', flags=F.CHUNK, total=10, offset=2**40))], 'close', 'overruns its message'),
    ('chunk total over max_message_size', lambda p: [carrier(V + raw_data(
        0, ID, b'x', flags=F.CHUNK, total=D.max_message_size + 1, offset=0))], 'close',
     f'message of {D.max_message_size + 1} bytes exceeds max_message_size'),
    ('chunk totals contradict', lambda p: [carrier(V + raw_data(
        1, ID, b'ab', flags=F.CHUNK, total=10, offset=2) + raw_data(
        2, ID, b'cd', flags=F.CHUNK, total=12, offset=4))], 'close',
     'chunk says the message has 12 bytes, an earlier chunk said 10'),
    ('first chunk not at offset 0', lambda p: [carrier(V + raw_data(
        0, ID, b'ab', flags=F.CHUNK, total=10, offset=4))], 'close',
     'message starts with a chunk at offset 4'),
    ('chunk skips bytes', lambda p: [carrier(V + raw_data(
        0, ID, b'ab', flags=F.CHUNK, total=10, offset=0) + raw_data(
        1, ID, b'cd', flags=F.CHUNK, total=10, offset=6))], 'close',
     'chunk at offset 6 of 10 does not follow 2 of 10'),
    ('interleaved chunks', lambda p: [carrier(V + raw_data(
        0, ID, b'ab', flags=F.CHUNK, total=10, offset=0) + raw_data(
        1, ID2, b'cd', flags=F.CHUNK, total=10, offset=0))], 'close',
     'chunks of two messages are interleaved'),
    ('message between chunks', lambda p: [carrier(V + raw_data(
        0, ID, b'ab', flags=F.CHUNK, total=10, offset=0) + raw_data(
        1, ID2, app_payload(['record', 'x'])))], 'close',
     'a message interrupts the chunks of another'),
    ('ACK for messages never sent', lambda p: [carrier(V + F.encode_ack(5))], 'close',
     'ACK for sequence number 4, never sent'),
    ('ACK range beyond what was sent', lambda p: [carrier(V + F.encode_ack(0, [(3, 5)]))], 'close',
     'ACK range up to 4, never sent'),
    ('ACK range with zero gap', lambda p: [carrier(V + raw_ack(0, [(0, 1)]))], 'close',
     'ACK range with zero gap or zero length'),
    ('ACK with more ranges than max_ack_ranges', lambda p: [carrier(V + raw_ack(
        0, [(1, 1)] * (D.max_ack_ranges + 1)))], 'close',
     f'ACK carries {D.max_ack_ranges + 1} ranges, more than the {D.max_ack_ranges} allowed'),
    ('ACK range count far beyond the batch', lambda p: [carrier(V + raw_ack(0, [], count=2**61))],
     'close', 'ACK carries 2305843009213693952 ranges'),
    ('ACK range past 2^62', lambda p: [carrier(V + raw_ack(0, [(2**61, 2**61)]))], 'close',
     'ACK range beyond the sequence number space'),
    ('DATA beyond the receive window', lambda p: [carrier(V + p.data(
        ['record', 'x'], seq=D.receive_window))], 'close',
     f'sequence number {D.receive_window} is beyond the receive window [0, {D.receive_window})'),
    ('DATA at the last sequence number', lambda p: [carrier(V + p.data(['record', 'x'],
                                                                       seq=2**62 - 1))],
     'close', 'is beyond the receive window'),
    ('CLOSE reason over 256 bytes', lambda p: [carrier(V + bytes((F.CLOSE, 0)) + varint(300)
                                                       + b'r' * 300)],
     'close', 'CLOSE reason of 300 bytes exceeds 256'),
    ('payload not JSON', lambda p: [carrier(V + p.data(payload=b'\x00{{{'))], 'close',
     'invalid application payload'),
    ('payload not UTF-8', lambda p: [carrier(V + p.data(payload=b'\x00\xff\xfe'))], 'close',
     'invalid application payload'),
    ('payload not a list', lambda p: [carrier(V + p.data(payload=b'\x00{"a":1}'))], 'close',
     'invalid application payload: not a list'),
    ('event name not a string', lambda p: [carrier(V + p.data([1, 2]))], 'close',
     'event without a name'),
    ('empty event list', lambda p: [carrier(V + p.data([]))], 'close', 'event without a name'),
    ('empty payload', lambda p: [carrier(V + p.data(payload=b''))], 'close',
     'invalid application payload'),
    ('attachment past the end', lambda p: [carrier(V + p.data(payload=b'\x02\x10abc'))], 'close',
     'attachment runs past the end'),
    ('attachment count varint overflow', lambda p: [carrier(V + p.data(payload=b'\xff' * 12))],
     'close', 'truncated or oversized varint'),
    ('placeholder naming a missing attachment', lambda p: [carrier(V + p.data(
        payload=b'\x01\x03abc' + b'["record",{"_placeholder":true,"num":7}]'))], 'close',
     'bad attachment number'),
    ('JSON nested 50000 deep', lambda p: [carrier(V + p.data(
        payload=b'\x00' + b'[' * 50_000 + b']' * 50_000))], 'close',
     'invalid application payload'),
    ('5000-digit integer', lambda p: [carrier(V + p.data(
        payload=b'\x00["record",' + b'9' * 5000 + b']'))], 'close',
     'invalid application payload'),
    # Not errors: tolerated, bounded, and the session goes on.
    ('response to an unknown request', lambda p: [carrier(V + p.data(
        ['x'], flags=F.RESPONSE, reply_to=os.urandom(16)))], 'ignore', None),
    ('chained reply to an unknown request', lambda p: [carrier(V + p.data(
        ['x'], flags=F.RESPONSE | F.REQUEST, reply_to=os.urandom(16), msg_id=ID))], 'ignore',
     None),
    ('reserved event names', lambda p: [carrier(F.encode_batch([
        p.data(['disconnect', 'fake']), p.data(['connect']),
        p.data(['relio_resume', 'x'], request=True), p.data(['relio_suspend', 'x'])]))],
     'ignore', "dropped reserved event 'disconnect'"),
    ('request without a handler', lambda p: [carrier(V + p.data(['no-such-event'], request=True))],
     'ignore', None),
    ('non-minimal varints and a duplicate seq', lambda p: [carrier(_non_minimal(p))], 'ignore',
     None),
    ('carrier for a namespace not connected', lambda p: [carrier(
        F.encode_batch([F.encode_ack(99)]), '/nope')], 'ignore', None),
    # The carrier itself is broken: relio cannot tell which session it was for.
    ('empty binary message', lambda p: [b''], 'drop', 'empty carrier message'),
    ('carrier namespace length over 127', lambda p: [bytes((200,)) + V + F.encode_ack(0)],
     'drop', 'invalid carrier namespace'),
    ('carrier namespace past the end', lambda p: [bytes((50,)) + b'/x'], 'drop',
     'invalid carrier namespace'),
    ('carrier namespace not UTF-8', lambda p: [bytes((2,)) + b'\xff\xfe' + V + F.encode_ack(0)],
     'drop', 'invalid carrier namespace'),
    ('message over engine.io max_http_buffer_size', lambda p: [b'\x00' + b'\x01' * 1_000_001],
     'limit', None),
]


def _app_level(reason: str) -> bool:
    return 'application payload' in reason or 'event without a name' in reason or \
        'attachment' in reason or 'oversized varint' in reason


async def _fresh_session(make, peer: HostilePeer | None, port: int) -> tuple[HostilePeer, str]:
    """A new relio session on '/' (on the same connection while it lives)."""
    if peer is None or peer.closed.is_set():
        peer = await make(port=port)
    reply = await peer.connect('/')
    assert reply.packet_type == 0 and reply.data[wire.HANDSHAKE_KEY]['resumed'] is False
    return peer, reply.data['sid']


async def _assert_session_works(a: Arena, peer: HostilePeer, sid: str) -> None:
    """The attacker's own session still answers: an 'echo' request gets its response."""
    frame = peer.data(['echo', 'still here'], request=True)
    msg_id = F.decode_batch(V + frame)[0].msg_id
    await peer.send_frames([frame])
    await peer.wait_for(lambda: any(f.reply_to == msg_id for f in peer.data_frames()),
                        what='echo response')
    reply = next(f for f in peer.data_frames() if f.reply_to == msg_id)
    assert reply.payload == app_payload(['still here'])
    a.assert_bounded(sid)


@pytest.mark.timeout(60)
async def test_malformed_batches_end_only_the_attackers_session(logs):
    """Each entry of MALFORMED on a fresh session: the expected outcome, logged with its reason."""
    async with arena() as a, peers() as make:
        sio = a.sio
        peer = None
        for name, build, outcome, reason in MALFORMED:
            peer, sid = await _fresh_session(make, peer, a.port)
            eio_sid = peer.eio_sid
            logs.clear()
            for message in build(peer):
                await peer.send_binary(message)
            if outcome in ('close', 'ignore'):
                await peer.sync()
            if outcome == 'close':
                await until(lambda: a.disconnect_count(sid) == 1, what=f'{name}: disconnect')
                assert sid not in sio.relio_registry, name
                assert a.reason(sid).startswith('protocol error: ') and reason in a.reason(sid), \
                    (name, a.reason(sid))
                # The peer is told why (CLOSE code 1 after a final ACK), then socket.io DISCONNECT.
                await peer.wait_for(lambda: peer.closes() and peer.ns['/'].disconnected.is_set(),
                                    what=f'{name}: CLOSE + DISCONNECT')
                close = peer.closes()[-1]
                assert reason in close.reason and close.reason.startswith('protocol error: ')
                # Engine-level errors close with code 1 (PROTOCOL_ERROR). Errors in the
                # application payload are found by the socket.io layer, which closes with
                # Channel.close(), i.e. code 0 (NORMAL) and the same reason (see SECURITY.md).
                assert close.code == (0 if _app_level(reason) else 1), (name, close)
                logged = [m for m in relio_messages(logs) if sid in m and reason in m]
                assert logged, (name, relio_messages(logs))
                assert not peer.closed.is_set(), f'{name}: the connection itself should live'
            elif outcome == 'ignore':
                assert sio.relio_registry.get(sid).attached and a.disconnect_count(sid) == 0, name
                await _assert_session_works(a, peer, sid)
                if reason is not None:
                    assert any(reason in m for m in relio_messages(logs)), name
                if name.startswith('chained reply'):
                    # Nobody can answer it: the server answers with nothing rather than leak it.
                    answers = [f.payload for f in peer.data_frames() if f.reply_to == ID]
                    assert answers == [b'\x00[]']
                await peer.disconnect_namespace('/')
                await until(lambda: a.disconnect_count(sid) == 1, what=f'{name}: leave')
                await peer.wait_for(lambda: sid not in sio.relio_registry, what='gone')
            else:       # drop / limit: the engine.io connection goes, the session is parked
                await asyncio.wait_for(peer.closed.wait(), 5)
                await until(lambda: sid in a.suspends, what=f'{name}: suspended')
                assert not sio.relio_registry.get(sid).attached and a.disconnect_count(sid) == 0
                if outcome == 'drop':
                    assert f'relio: closing {eio_sid}: {reason}' in relio_messages(logs), name
                else:
                    assert not relio_messages(logs), name
                a.assert_bounded(sid)
                # A parked session is bounded by session_ttl / max_parked_sessions; end it now.
                await sio.disconnect(sid)
                assert sid not in sio.relio_registry
            a.assert_consistent()
            assert_no_errors(logs)
        # Specific effects: the chained reply to an unknown request was answered (not leaked), the
        # non-minimal varints were accepted and the duplicate id dropped.
        assert sum(1 for items in a.records.values() if items == ['non-minimal']) == 1
        assert not any('duplicate' in items for items in a.records.values())
        assert sio.relio_sessions == 1 and sio.relio_parked_sessions == 0   # the victim
        await a.victim.round()
    assert_no_errors(logs)


def _random_message(rng: random.Random, kind: int, peer: HostilePeer) -> bytes:
    """One seeded hostile engine.io binary message of four kinds: any bytes; a carrier for '/' with
    any batch; a carrier with the right version byte and random frames; a valid batch mutated."""
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))
    if kind == 1:
        return b'\x00' + rng.randbytes(rng.randrange(0, 200))
    if kind == 2:
        return b'\x00' + V + rng.randbytes(rng.randrange(1, 200))
    ns = peer.ns['/']
    frames = []
    for _ in range(rng.randrange(1, 5)):
        pick = rng.random()
        if pick < 0.5:
            frames.append(F.encode_data(ns.next_seq + rng.randrange(0, 3), ns.ids(),
                                        app_payload(['record', rng.randrange(1000)]),
                                        flags=rng.choice([0, F.REQUEST])))
        elif pick < 0.8:
            total = rng.randrange(1, 300)
            offset = rng.randrange(0, total)
            frames.append(F.encode_data(ns.next_seq + rng.randrange(0, 3), ns.ids(),
                                        rng.randbytes(rng.randrange(1, total - offset + 1)),
                                        flags=F.CHUNK, total=total, offset=offset))
        else:
            frames.append(F.encode_ack(rng.randrange(0, 3)))
    batch = bytearray(F.encode_batch(frames))
    for _ in range(rng.randrange(1, 4)):
        op = rng.random()
        pos = rng.randrange(1, len(batch))
        if op < 0.6:
            batch[pos] = rng.randrange(256)
        elif op < 0.8:
            del batch[pos:]
            batch += b'\x01' if len(batch) < 2 else b''
        else:
            batch[pos:pos] = rng.randbytes(rng.randrange(1, 8))
    return b'\x00' + bytes(batch)


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_random_byte_strings(logs):
    """1000 seeded random messages: each ends at most the attacker's session or connection, with a
    reason; relio never lets another exception escape; the victim is untouched."""
    rng = random.Random(0x5EC)
    outcomes: collections.Counter = collections.Counter()
    async with arena() as a, peers() as make:
        sio = a.sio
        peer, sid = None, None
        for i in range(1000):
            if peer is None or peer.closed.is_set() or sid not in sio.relio_registry:
                if peer is not None and not peer.closed.is_set():
                    await peer.wait_for(lambda: peer.ns['/'].disconnected.is_set(),
                                        what='DISCONNECT before reconnecting')
                peer, sid = await _fresh_session(make, peer, a.port)
            eio_sid = peer.eio_sid
            logs.clear()
            await peer.send_binary(_random_message(rng, i % 4, peer))
            with contextlib.suppress(PeerClosed):
                await peer.sync()
            if peer.closed.is_set():
                outcomes['connection closed'] += 1
                assert any(m.startswith(f'relio: closing {eio_sid}: ')
                           for m in relio_messages(logs)), relio_messages(logs)
                await until(lambda: sid in a.suspends, what='suspended')
                await sio.disconnect(sid)       # a parked session: end it now
            elif sid not in sio.relio_registry:
                await until(lambda: a.disconnect_count(sid) == 1, what='disconnect')
                reason = a.reason(sid)
                if reason == sio.reason.CLIENT_DISCONNECT:
                    outcomes['closed by a CLOSE frame in the garbage'] += 1
                else:
                    outcomes['session closed'] += 1
                    assert reason.startswith('protocol error: '), reason
                    assert any(sid in m and reason[len('protocol error: '):] in m
                               for m in relio_messages(logs)), (reason, relio_messages(logs))
            else:
                outcomes['tolerated'] += 1
                assert sio.relio_registry.get(sid).attached
                a.assert_bounded(sid, awaiting=0)
            assert_no_errors(logs)
        a.assert_consistent()
        print(f'\n1000 random messages: {dict(outcomes)}')
        assert sum(outcomes.values()) == 1000
        assert outcomes['session closed'] and outcomes['connection closed'] and \
            outcomes['tolerated']
        if peer is not None and not peer.closed.is_set() and sid in sio.relio_registry:
            await peer.disconnect_namespace('/')
            await until(lambda: sid not in sio.relio_registry, what='leave')
        await until(lambda: sio.relio_sessions == 1, what='only the victim left')
    assert_no_errors(logs)


@pytest.mark.timeout(30)
async def test_plain_event_packets_cannot_fake_lifecycle_events(logs):
    """A relio peer sending `42["disconnect", ...]` next to its carrier messages."""
    async with arena() as a, peers() as make:
        peer = await make(port=a.port)
        sid = (await peer.connect('/')).data['sid']
        await peer.send_text('42["disconnect","fake"]')
        await peer.sync()
        await peer.send_frames([peer.data(['echo', 1], request=True)])
        await peer.wait_for(lambda: peer.data_frames(), what='echo')
        assert a.sio.relio_registry.get(sid).attached
        assert a.disconnect_count(sid) == 0, a.disconnects
        assert any('dropped a plain Socket.IO event' in m for m in relio_messages(logs))
    assert_no_errors(logs)


@pytest.mark.timeout(30)
async def test_carrier_in_flight_after_the_session_ended(logs):
    """The server ends the session (here: a protocol error) while the peer's next batch is on its
    way, as happens to a well-behaved client whose session times out or is disconnected."""
    async with arena() as a, peers() as make:
        peer = await make(port=a.port)
        sid = (await peer.connect('/')).data['sid']
        await peer.send_frames([F.encode_ack(5)])              # ends the session
        await peer.send_frames([peer.data(['record', 'in flight'])])
        await peer.sync()
        await until(lambda: a.disconnect_count(sid) == 1, what='session ended')
        assert not peer.closed.is_set() and 'in flight' not in a.records[sid]
        assert_no_errors(logs)


# ---------------------------------------------------------------------------- malformed handshakes

@pytest.mark.timeout(30)
async def test_malformed_handshakes(logs):
    """Broken `__relio` handshakes: plain client, refused resume, or the own session ended."""
    async with arena() as a, peers() as make:
        sio = a.sio
        victim = a.victim
        victim_credential = victim.client.relio_sessions['/'].credential
        peer = await make(port=a.port)

        async def leave(sid: str) -> None:
            await peer.disconnect_namespace('/')
            await until(lambda: a.disconnect_count(sid) == 1, what='leave')
            await until(lambda: sid not in sio.manager.rooms.get('/', {}).get(None, {}),
                        what='left the room')

        # `__relio` that is not a version-1 object: served as a plain Socket.IO client (python-
        # socketio's path, no relio session, `__relio` removed from the auth the app sees).
        for hello in ['yes', 5, [1], {'v': 2}, {'v': '1'}, {'v': None}, {}, {'sid': 'x'}]:
            reply = await peer.connect('/', auth={'name': 'plain'}, hello=hello)
            assert reply.packet_type == 0 and wire.HANDSHAKE_KEY not in reply.data, hello
            sid = reply.data['sid']
            assert sid not in sio.relio_registry and sio.relio_sessions == 1
            assert await sio.get_session(sid) == {'name': 'plain'}
            await leave(sid)

        # Resume attempts naming no session, or the victim's sid with a wrong credential (of any
        # type): refused; a new session is started and told why; the victim is untouched.
        hellos = [
            {'sid': 5, 'credential': 'x'}, {'sid': None}, {'sid': [victim.sid], 'credential': 'x'},
            {'sid': {'a': 1}, 'credential': victim_credential},
            {'sid': victim.sid}, {'sid': victim.sid, 'credential': 'wrong'},
            {'sid': victim.sid, 'credential': 123}, {'sid': victim.sid, 'credential': None},
            {'sid': victim.sid, 'credential': ['a']}, {'sid': victim.sid, 'credential': {'a': 1}},
            {'sid': victim.sid, 'credential': victim_credential[:-1]},
            {'sid': victim.sid, 'credential': victim_credential + 'x'},
            {'sid': victim.sid, 'credential': victim_credential.swapcase()},
            {'sid': victim.sid, 'credential': 'x' * 500_000},
            {'sid': victim.sid, 'credential': 'wrong', 'state': 'A' * 600_000},
            {'sid': victim.sid, 'credential': 'wrong', 'state': '%%%'},
        ]
        for extra in hellos:
            logs.clear()
            reply = await peer.connect('/', hello={'v': 1, **extra})
            info = reply.data[wire.HANDSHAKE_KEY]
            assert info['resumed'] is False, extra
            assert info['refused'] == UNKNOWN_SESSION, extra
            sid = reply.data['sid']
            assert sid != victim.sid and sid in sio.relio_registry
            assert any('resume refused' in m for m in relio_messages(logs, logging.INFO))
            await leave(sid)
        assert victim.client.relio_sessions['/'].credential == victim_credential
        assert sio.relio_registry.get(victim.sid).credential == victim_credential

        # A second CONNECT on a namespace this connection already has: python-socketio refuses it.
        reply = await peer.connect('/')
        first = reply.data['sid']
        again = await peer.connect('/')
        assert again.packet_type == 4          # CONNECT_ERROR
        assert sio.relio_registry.get(first).attached and a.disconnect_count(first) == 0
        await leave(first)

        # A valid credential (the attacker's own parked session) with a broken resume state: that
        # session ends ("protocol error"), the client gets a new one and is told why.
        states = {
            'too long': 'A' * 5000, 'not base64': '!!!not base64!!!', 'not a string': 12345,
            'missing': ..., 'null': None, 'not an ACK frame': base64.b64encode(b'\x07').decode(),
            'ACK with trailing bytes': base64.b64encode(F.encode_ack(0) + b'\x00').decode(),
            'ACK of frames never sent': base64.b64encode(F.encode_ack(50)).decode(),
            'ACK range count huge': base64.b64encode(raw_ack(0, [], count=2**40)).decode(),
        }
        for what, state in states.items():
            owner = await make(port=a.port)
            reply = await owner.connect('/')
            sid, credential = reply.data['sid'], reply.data[wire.HANDSHAKE_KEY]['credential']
            await owner.close()
            await until(lambda: sid in a.suspends, what='parked')
            hello = {'v': 1, 'sid': sid, 'credential': credential}
            if state is not ...:
                hello['state'] = state
            reply = await peer.connect('/', hello=hello)
            info = reply.data[wire.HANDSHAKE_KEY]
            assert info['resumed'] is False and info['refused'].startswith('protocol error: '), \
                (what, info)
            assert reply.data['sid'] != sid
            await until(lambda: a.disconnect_count(sid) == 1, what=f'{what}: old session ended')
            assert sid not in sio.relio_registry
            await leave(reply.data['sid'])

        # A valid credential presented on another namespace: that session ends (never two
        # namespaces for one session); the namespace itself is refused as python-socketio would.
        owner = await make(port=a.port)
        reply = await owner.connect('/')
        sid, credential = reply.data['sid'], reply.data[wire.HANDSHAKE_KEY]['credential']
        other = await peer.connect('/other', hello={'v': 1, 'sid': sid, 'credential': credential})
        assert other.packet_type == 4
        await until(lambda: a.disconnect_count(sid) == 1, what='ended')
        await owner.close()

        a.assert_consistent()
        assert sio.relio_sessions == 1 and sio.relio_parked_sessions == 0
    assert_no_errors(logs)


# --------------------------------------------------------------- 2. a peer that never acknowledges

@pytest.mark.timeout(30)
async def test_peer_that_never_acknowledges(logs):
    """Outbox full -> QueueFull / blocking waits; delivery_timeout closes the session."""
    cfg = relio.Config(max_outbox_messages=50, delivery_timeout=1.0)
    async with arena(cfg) as a, peers() as make:
        sio = a.sio
        loop = asyncio.get_running_loop()
        peer = await make(port=a.port)          # answers engine.io pings, never ACKs relio DATA
        reply = await peer.connect('/')
        sid = reply.data['sid']
        errors: list = []
        sio.on('relio_delivery_error', lambda s, error: errors.append((s, error)))
        started = loop.time()
        deliveries = [await sio.emit('push', i, to=sid, block=False) for i in range(50)]
        with pytest.raises(relio.QueueFull):
            await sio.emit('push', 50, to=sid, block=False)
        st = a.assert_bounded(sid)
        assert st['outbox_messages'] == 50
        # Blocking emits and calls wait for room instead of failing.
        blocked = asyncio.ensure_future(sio.emit('push', 'blocked', to=sid))
        call = asyncio.ensure_future(sio.call('cecho', 'x', to=sid, timeout=30))
        await peer.wait_for(lambda: len(peer.ns['/'].received) == 50, what='50 DATA frames')
        assert not blocked.done() and not call.done()
        assert sio.session_stats(sid)['outbox_messages'] == 50
        # delivery_timeout after the oldest message was accepted: the session is closed (not
        # before; how soon after depends on the machine, so it is not asserted).
        await until(lambda: a.disconnect_count(sid) == 1, timeout=10, what='session closed')
        assert a.reason(sid) == 'delivery timeout'
        assert a.disconnected_at[sid] - started >= 0.9 * cfg.delivery_timeout
        for delivery in deliveries:
            with pytest.raises(relio.DeliveryError) as info:
                await asyncio.wait_for(delivery, 10)
            assert info.value.reason == 'delivery timeout' and info.value.sid == sid
        # The blocked emit returns its Delivery, which fails like the others.
        delivery = await asyncio.wait_for(blocked, 10)
        with pytest.raises(relio.DeliveryError) as info:
            await asyncio.wait_for(delivery, 10)
        assert info.value.reason == 'delivery timeout'
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(call, 10)
        await peer.wait_for(lambda: peer.closes(), what='CLOSE')
        assert (peer.closes()[0].code, peer.closes()[0].reason) == (2, 'delivery timeout')
        await until(lambda: len(errors) >= 50, what='relio_delivery_error events')
        assert {s for s, _ in errors} == {sid}
        assert sid not in sio.relio_registry and sio.session_stats(sid) is None
        # Emitting to the ended sid fails at once instead of queueing for nobody.
        with pytest.raises(relio.DeliveryError):
            await (await sio.emit('push', 'late', to=sid))
        await a.victim.round()
        assert a.disconnect_count(sid) == 1          # `disconnect` fired once, and only once
        assert sio.relio_sessions == 1
    assert_no_errors(logs)


@pytest.mark.timeout(30)
async def test_blocking_broadcast_survives_a_stalled_recipient(logs):
    """A room holding a stalled hostile member and the victim: the victim still gets broadcasts."""
    cfg = relio.Config(max_outbox_messages=5, delivery_timeout=1.0)
    async with arena(cfg) as a, peers() as make:
        sio = a.sio
        peer = await make(port=a.port)
        sid = (await peer.connect('/')).data['sid']
        await peer.send_frames([peer.data(['join', 'room'], request=True)])
        await peer.wait_for(lambda: peer.ns['/'].received, what='join answer')
        assert await a.victim.client.call('join', 'room', timeout=5) == 'ok'
        while sio.session_stats(sid)['outbox_messages'] < cfg.max_outbox_messages:
            await sio.emit('push', 'filler', to=sid, block=False)
        # The hostile member (joined first) stalls the broadcast until its session times out ...
        delivery = await asyncio.wait_for(sio.emit('push', 'to the room', room='room'), 10)
        await until(lambda: a.disconnect_count(sid) == 1, what='stalled member gone')
        assert a.reason(sid) == 'delivery timeout'
        # ... which fails its own delivery only: the other members get the message.
        with pytest.raises(relio.DeliveryError) as info:
            await asyncio.wait_for(delivery, 10)
        assert [(e.sid, e.reason) for e in info.value.failures] == [(sid, 'delivery timeout')]
        assert delivery.recipients == 2
        a.victim.pushed.append('to the room')
        await until(lambda: 'to the room' in a.victim.got, timeout=10, what='broadcast at victim')
    assert_no_errors(logs)


# ------------------------------------------------------------------------ 3. many reassemblies

MiB = 1024 * 1024


@pytest.mark.timeout(30)
async def test_many_unfinished_reassemblies(logs):
    """First chunks of many big messages, never finished: count, bytes and memory capped."""
    cfg = relio.Config(max_reassemblies=4, max_reassembly_bytes=1 * MiB,
                       max_message_size=2 * MiB)
    total = 256 * 1024                       # each message announces 256 KiB: 4 fit in 1 MiB
    async with arena(cfg) as a, peers() as make:
        sio = a.sio
        peer = await make(port=a.port, keep_frames=False)
        sid = (await peer.connect('/')).data['sid']
        ns = peer.ns['/']

        async def first_chunks(seqs: range) -> None:
            """The first 1 KiB chunk of a new 256 KiB message at each seq, never finished."""
            for start in range(seqs.start, seqs.stop, 50):
                await peer.send_frames([
                    raw_data(seq, ns.ids(), b'x' * 1024, flags=F.CHUNK, total=total, offset=0)
                    for seq in range(start, min(start + 50, seqs.stop))])
            await peer.sync()

        with Traced() as traced:
            # Seqs 0 and 1 are not sent: every chunk waits ahead of a gap (no head-of-line
            # admission for them).
            await first_chunks(range(2, 42))
            st = a.assert_bounded(sid)
            assert st['reassembly_bytes'] == 4 * total <= cfg.max_reassembly_bytes
            assert st['frames_refused'] == 36 and st['held_frames'] == 4
            # Refused frames are not acknowledged (the sender must send them again later).
            await peer.wait_for(lambda: ns.last_ack is not None and
                                HostilePeer.acked_seqs(ns.last_ack) == {2, 3, 4, 5}, what='ACK')
            grown_40 = traced.grown()
            await first_chunks(range(42, 1042))                   # 25x more: refused too
            st = a.assert_bounded(sid)
            assert st['reassembly_bytes'] == 4 * total and st['frames_refused'] == 1036
            grown_1040 = traced.grown()
            # The head-of-line message is always admitted (so the stream can progress), within
            # max_message_size: at most max_reassembly_bytes + max_message_size per session. (Seq 1
            # stays missing, so the held chunks of other messages are not reached: they would be
            # an interleaving error.)
            await peer.send_frames([raw_data(0, ns.ids(), b'x' * 1024, flags=F.CHUNK,
                                             total=cfg.max_message_size, offset=0)])
            await peer.sync()
            st = a.assert_bounded(sid)
            assert st['reassembly_bytes'] == 4 * total + cfg.max_message_size
            grown_hol = traced.grown()
        print(f'\nreassembly flood: +{grown_40 / MiB:.2f} MiB after 40 first chunks, '
              f'+{grown_1040 / MiB:.2f} MiB after 1040, +{grown_hol / MiB:.2f} MiB with a '
              f'head-of-line message of {cfg.max_message_size / MiB:.0f} MiB')
        assert 4 * total <= grown_40 < cfg.max_reassembly_bytes + 512 * 1024
        assert grown_1040 - grown_40 < 256 * 1024              # flat
        assert grown_hol < cfg.max_reassembly_bytes + cfg.max_message_size + 512 * 1024
        # The attacker's session is still usable (it may yet complete a message), bounded.
        assert sio.relio_registry.get(sid).attached and a.disconnect_count(sid) == 0
    assert_no_errors(logs)


@pytest.mark.timeout(30)
async def test_worst_case_session_with_the_defaults(logs):
    """What one peer can make a server with the default Config hold (docs/SECURITY.md section 6):
    reassembly buffers up to max_reassembly_bytes + max_message_size from two tiny batches, and
    receive_window - 1 held frames."""
    async with arena() as a, peers() as make:
        sio = a.sio
        peer = await make(port=a.port, keep_frames=False)
        sid = (await peer.connect('/')).data['sid']
        ids = peer.ns['/'].ids
        with Traced() as traced:
            # One-byte first chunks of 64 MiB messages ahead of a gap, then a head-of-line one.
            held = V + b''.join(raw_data(seq, ids(), b'x', flags=F.CHUNK, total=D.max_message_size,
                                         offset=0) for seq in range(2, 2 + D.max_reassemblies))
            hol = V + raw_data(0, ids(), b'x', flags=F.CHUNK, total=D.max_message_size, offset=0)
            await peer.send_batch(held)
            await peer.send_batch(hol)
            await peer.sync()
            st = a.assert_bounded(sid)
            assert st['reassembly_bytes'] == D.max_reassembly_bytes + D.max_message_size
            reassembly = traced.grown()
        assert D.max_reassembly_bytes + D.max_message_size <= reassembly < \
            D.max_reassembly_bytes + D.max_message_size + 1024 * 1024
        print(f'\nreassembly: batches of {len(held)} and {len(hol)} bytes -> '
              f'{reassembly / MiB:.1f} MiB allocated (uninitialised)')
        await peer.disconnect_namespace('/')
        await until(lambda: sid not in sio.relio_registry, what='left')

        peer = await make(port=a.port, keep_frames=False)
        sid = (await peer.connect('/')).data['sid']
        ids = peer.ns['/'].ids
        with Traced() as traced:
            frames = [raw_data(seq, ids(), b'') for seq in range(1, D.receive_window)]
            for start in range(0, len(frames), 4000):
                await peer.send_batch(V + b''.join(frames[start:start + 4000]))
            await peer.sync()
            st = a.assert_bounded(sid)
            assert st['held_frames'] == D.receive_window - 1 and st['held_bytes'] == 0
            held_memory = traced.grown()
        print(f'held frames: {D.receive_window - 1} empty frames ahead of a gap -> '
              f'{held_memory / 1024:.0f} KiB ({held_memory / (D.receive_window - 1):.0f} B each)')
        assert held_memory < (D.receive_window - 1) * 512
    assert_no_errors(logs)


# --------------------------------------------------------------------------- 4. message-id flood

@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_flood_of_new_message_ids(logs):
    """200k small messages with unique ids: the id set stays at id_set_capacity."""
    cfg = relio.Config(id_set_capacity=1000)
    n, per_batch = 200_000, 2000
    async with arena(cfg) as a, peers() as make:
        sio = a.sio
        peer = await make(port=a.port, keep_frames=False)
        sid = (await peer.connect('/')).data['sid']
        ns = peer.ns['/']
        payload = app_payload(['count'])
        ids: list[bytes] = []
        grown: dict[int, int] = {}
        with Traced() as traced:
            for start in range(0, n, per_batch):
                frames = []
                for seq in range(start, start + per_batch):
                    msg_id = ns.ids()
                    if seq < 3 or seq >= n - 3:
                        ids.append(msg_id)             # the oldest and the newest few
                    frames.append(F.encode_data(seq, msg_id, payload))
                await peer.send_frames(frames)
                if (start // per_batch) % 10 == 9:
                    await peer.sync()                  # keep the server within reach
                    await until(lambda: a.counted == start + per_batch, what='handlers')
                    if start + per_batch in (20_000, n):
                        grown[start + per_batch] = traced.grown()
            ns.next_seq = n
        assert a.counted == n
        st = a.assert_bounded(sid)
        assert st['messages_received'] == n and st['duplicates_dropped'] == 0
        print(f'\nid flood: +{grown[20_000] / 1024:.0f} KiB after 20k messages, '
              f'+{grown[n] / 1024:.0f} KiB after {n // 1000}k (id_set_capacity=1000)')
        assert grown[n] - grown[20_000] < 256 * 1024       # flat: the id set does not grow
        assert grown[n] < 2 * MiB
        # Dedup by id covers exactly the last id_set_capacity ids: a recent id sent again under a
        # new seq is dropped; one older than that is forgotten and delivered again.
        await peer.send_frames([peer.data(payload=payload, msg_id=ids[-1])])
        await peer.sync()
        assert sio.session_stats(sid)['duplicates_dropped'] == 1 and a.counted == n
        await peer.send_frames([peer.data(payload=payload, msg_id=ids[0])])
        await peer.sync()
        assert sio.session_stats(sid)['duplicates_dropped'] == 1 and a.counted == n + 1
    assert_no_errors(logs)


# --------------------------------------------------------------- 5. request flood, slow handler

@pytest.mark.timeout(30)
async def test_request_flood_to_a_slow_handler(logs):
    """500 requests in order to a handler that does not finish: at most max_pending_requests."""
    cfg = relio.Config(max_pending_requests=16)
    async with arena(cfg) as a, peers() as make:
        sio = a.sio
        peer = await make(port=a.port)
        sid = (await peer.connect('/')).data['sid']
        tasks_before = len(asyncio.all_tasks())
        await peer.send_frames([peer.data(['slow', i], request=True) for i in range(500)])
        await peer.sync()
        await until(lambda: a.slow_running == 16, what='16 handlers')
        engine = sio.relio_registry.get(sid).channel.engine
        st = a.assert_bounded(sid)
        assert len(engine.awaiting_reply) == 16 and st['frames_refused'] >= 1
        assert len(asyncio.all_tasks()) - tasks_before <= 16 + 4
        # The refused request sent again while all 16 are pending: refused again, not acked.
        frames_refused = st['frames_refused']
        await peer.send_frames([peer.data(['slow', 16], request=True, seq=16)])
        await peer.sync()
        assert sio.session_stats(sid)['frames_refused'] == frames_refused + 1
        assert a.slow_running == 16 and a.slow_max == 16
        assert 16 not in HostilePeer.acked_seqs(peer.acks()[-1])
        # Released, the 16 are answered (and the victim was served all along: see arena exit).
        a.gate.set()
        await peer.wait_for(lambda: len(peer.data_frames()) >= 16, what='16 answers')
        assert sorted(json.loads(f.payload[1:])[0] for f in peer.data_frames()) == list(range(16))
        await until(lambda: not engine.awaiting_reply, what='answered')
    assert_no_errors(logs)


@pytest.mark.timeout(30)
async def test_request_flood_ahead_of_a_gap(logs):
    """200 requests sent ahead of a gap, then the gap filled: still at most max_pending_requests."""
    cfg = relio.Config(max_pending_requests=16)
    async with arena(cfg) as a, peers() as make:
        peer = await make(port=a.port)
        await peer.connect('/')
        await peer.send_frames([peer.data(['slow', i], request=True, seq=i)
                                for i in range(1, 201)])
        await peer.send_frames([peer.data(['noop'], seq=0)])      # fills the gap
        await peer.sync()
        try:
            # Held requests take at most max_pending_requests - 1 slots (one is kept for the
            # in-order frame that fills the gap); this peer never retransmits the refused ones.
            # Delivery is synchronous: after sync() the engine has decided for every frame.
            sid = peer.ns['/'].sid
            held = cfg.max_pending_requests - 1
            assert len(a.sio.relio_registry.get(sid).channel.engine.awaiting_reply) == held
            assert a.sio.session_stats(sid)['frames_refused'] == 200 - held
            await until(lambda: a.slow_running == held, what='handlers')
            assert a.slow_max == held
            # Refused frames are not acknowledged: the sender keeps them.
            await peer.wait_for(lambda: peer.acks() and peer.acks()[-1].cumulative > 0,
                                what='ACK of the frame that filled the gap')
            assert HostilePeer.acked_seqs(peer.acks()[-1]) == set(range(held + 1))
        finally:
            a.gate.set()


# --------------------------------------------------------------------- 6. tight reconnect loop

@pytest.mark.timeout(60)
async def test_reconnect_loop_with_wrong_credentials(logs):
    """200 connect / guess a credential / drop cycles: parked sessions and tables bounded."""
    cfg = relio.Config(max_parked_sessions=20)
    async with arena(cfg) as a:
        sio = a.sio
        victim = a.victim
        state = wire.encode_state(F.encode_ack(0))
        sids: list[str] = []
        async with aiohttp_session() as http:
            previous = victim.sid
            for i in range(200):
                peer = HostilePeer(a.port, session=http)
                try:
                    await peer.open()
                    hello = {'v': 1, 'sid': previous if i % 3 else victim.sid,
                             'credential': f'guess-{i}', 'state': state}
                    reply = await peer.connect('/', hello=hello)
                    info = reply.data[wire.HANDSHAKE_KEY]
                    assert info['resumed'] is False and 'refused' in info
                    previous = reply.data['sid']
                    sids.append(previous)
                    if i % 4 == 0:
                        await peer.disconnect_namespace('/')      # a clean leave now and then
                finally:
                    await peer.close()                            # else: dropped, parked
            await until(lambda: all(sid in a.suspends or a.disconnect_count(sid)
                                    for sid in sids), what='every session parked or ended')
        await until(lambda: not sio.eio.sockets.keys() - {victim.client.eio.sid},
                    what='engine.io sockets closed')
        assert sio.relio_parked_sessions == cfg.max_parked_sessions
        assert sio.relio_sessions == cfg.max_parked_sessions + 1        # + the victim
        sizes = sio.relio_registry.sizes()
        assert sizes['sessions'] == cfg.max_parked_sessions + 1
        assert sizes['bound'] == 1 and sio.relio_registry.get(victim.sid).attached
        assert sizes['eio_refs'] == cfg.max_parked_sessions + 1
        assert len(sio.environ) <= cfg.max_parked_sessions + 1
        assert len(sio.manager.rooms['/'][None]) == cfg.max_parked_sessions + 1
        assert sum(len(r) for r in sio.manager.rooms['/'].values()) == \
            2 * (cfg.max_parked_sessions + 1)                         # None room + own room
        assert sio.relio_registry.sizes()['ended'] <= cfg.max_parked_sessions
        assert sio.relio_registry.sizes()['draining'] == 0
        assert not sio.manager.pending_connect and not sio.manager.pending_disconnect.get('/')
        # Every session that is not parked now ended once: cleanly, or evicted oldest first.
        parked = {s.sid for s in sio.relio_registry if not s.attached}
        dropped = [sid for i, sid in enumerate(sids) if i % 4]
        assert parked <= set(dropped[-cfg.max_parked_sessions - 10:])     # the most recent
        for sid in sids:
            assert a.disconnect_count(sid) == (0 if sid in parked else 1), sid
        reasons = collections.Counter(a.reason(sid) for sid in sids if sid not in parked)
        assert reasons == {'session evicted': len(dropped) - cfg.max_parked_sessions,
                           sio.reason.CLIENT_DISCONNECT: len(sids) - len(dropped)}, reasons
        assert len(a.connects) == 201
        a.assert_consistent()
    assert_no_errors(logs)


# ------------------------------------------------------------------ 7. 1000 parked sessions

@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_thousand_parked_sessions_expire(logs):
    """1000 sessions parked at once: memory per parked session; all expire after the TTL."""
    cfg = relio.Config(session_ttl=2.0)
    n = 1000
    # ping_timeout=60: tracemalloc snapshots of 1000 sessions block the loop for seconds on a loaded
    # machine, which must not look like a dead victim connection.
    async with arena(cfg, ping_timeout=60) as a:
        sio = a.sio
        loop = asyncio.get_running_loop()
        async with aiohttp_session() as http:
            opened: list[HostilePeer] = []
            try:
                with Traced() as traced:
                    before = traced.snapshot()
                    for start in range(0, n, 100):
                        group = [HostilePeer(a.port, session=http, keep_frames=False)
                                 for _ in range(100)]
                        opened += group
                        await asyncio.gather(*(p.open() for p in group))
                        await asyncio.gather(*(p.connect('/') for p in group))
                    sids = [p.ns['/'].sid for p in opened]
                    assert sio.relio_sessions == n + 1
                    # Every connection drops at once.
                    dropped_at = loop.time()
                    await asyncio.gather(*(p.close() for p in opened))
                    await until(lambda: sio.relio_parked_sessions == n, timeout=20,
                                what='all parked')
                    parked_after = loop.time() - dropped_at
                    del opened[:]
                    await until(lambda: len(sio.eio.sockets) == 1, timeout=20,
                                what='sockets closed')
                    assert sio.relio_sessions == n + 1
                    parked = [weakref.ref(sio.relio_registry.get(sid).channel) for sid in sids]
                    assert_no_errors(logs)
                    logs.clear()                    # captured records are not the server's
                    per_session = traced.grown() / n
                    by_relio = Traced.grown_in(before, traced.snapshot(), RELIO_FILES) / n
                    logs.clear()
                    # How much of it is the dead connection's ASGI objects (the uvicorn websocket
                    # protocol, its queues...), kept alive by the environ relio keeps for a parked
                    # session through environ['asgi.receive'] / ['asgi.send'] (bound methods).
                    for eio_sid in {s.eio_sid for s in sio.relio_registry}:
                        environ = sio.environ.get(eio_sid)
                        if eio_sid != a.victim.client.eio.sid and environ is not None:
                            for key in ('asgi.receive', 'asgi.send', 'asgi.scope', 'wsgi.input'):
                                environ.pop(key, None)
                    per_session_lean = traced.grown() / n
                    # After the TTL every one expires and `disconnect` fires once for each.
                    await until(lambda: sio.relio_parked_sessions == 0, timeout=20,
                                what='all expired')
                    await until(lambda: sum(a.disconnect_count(s) for s in sids) == n,
                                what='1000 disconnects')
                    first = min(a.disconnected_at[s] for s in sids) - dropped_at
                    last = max(a.disconnected_at[s] for s in sids) - dropped_at
                    assert_no_errors(logs)
                    logs.clear()
                    # What relio's code allocated for them is gone, but for why each sid ended
                    # (the registry's ended reasons, kept on purpose, bounded by max_parked_sessions). The process
                    # as a whole still holds python-engineio's closed sockets for a while (each
                    # one's ping task sleeps ping_interval; its service task iterates over a copy
                    # of the socket table): not measured here. The tasks that finish the
                    # sessions may still be running when the last disconnect handler has run
                    # (their coroutines are relio's allocations): measured until they are gone
                    # (bounded), so that the bound below is about what stays, not about timing.
                    left = [0]

                    def released() -> bool:
                        left[0] = Traced.grown_in(before, traced.snapshot(), RELIO_FILES)
                        return left[0] / n < 512

                    await poll(released, 10, step=0.5)
                    remaining = left[0]
            finally:
                await asyncio.gather(*(p.close() for p in opened))
        print(f'\n{n} parked sessions: {per_session:.0f} bytes each (tracemalloc, whole process),'
              f' {per_session_lean:.0f} without the dead connections\' ASGI objects,'
              f' {by_relio:.0f} allocated by relio\'s own code;'
              f' all parked {parked_after:.2f} s after the drop, expired {first:.2f} to '
              f'{last:.2f} s after it (session_ttl {cfg.session_ttl} s); '
              f'{remaining / n:.0f} bytes each left afterwards in relio\'s allocations')
        assert per_session < 64 * 1024 and per_session_lean < 32 * 1024 and by_relio < 16 * 1024
        # Not before the TTL (how soon after it depends on the machine and on the measurements
        # above, which block the loop for a while: printed, not asserted). Each expired once.
        assert first >= cfg.session_ttl
        assert all(a.disconnect_count(s) == 1 and a.reason(s) == 'session expired' for s in sids)
        assert sio.relio_sessions == 1 and sio.relio_parked_sessions == 0
        sio.relio_registry.check()
        assert [s.sid for s in sio.relio_registry] == [a.victim.sid]
        assert [s.eio_sid for s in sio.relio_registry] == [a.victim.client.eio.sid]
        sizes = sio.relio_registry.sizes()
        assert sizes['table'] == 1 and sizes['bound'] == 1 and sizes['eio_refs'] == 1
        assert list(sio.environ) == [a.victim.client.eio.sid]
        assert set(sio.manager.rooms['/'][None]) == {a.victim.sid}
        assert sizes['draining'] == 0 and sizes['expiry_armed'] == 0
        # Kept on purpose: why each sid ended (bounded by max_parked_sessions), so that an emit to
        # an ended sid fails with that reason.
        assert sizes['ended'] == n
        # No channel (engine, outbox, callbacks...) of an expired session is alive.
        gc.collect()
        assert not [ref for ref in parked if ref() is not None]
        assert remaining / n < 512
    assert_no_errors(logs)


# -------------------------------------------------------------------------- 8. credentials

@pytest.mark.timeout(30)
async def test_credentials_are_strong_and_distinct(logs):
    """Credentials: distinct, url-safe, >= 128 bits, not the sid; replaced on resume."""
    async with arena() as a, peers() as make:
        peer_list = [await make(port=a.port) for _ in range(10)]
        replies = [await p.connect('/') for p in peer_list]
        creds = [r.data[wire.HANDSHAKE_KEY]['credential'] for r in replies]
        sids = [r.data['sid'] for r in replies]
        creds.append(a.victim.client.relio_sessions['/'].credential)
        sids.append(a.victim.sid)
        assert len(set(creds)) == len(creds)
        for cred, sid in zip(creds, sids):
            assert re.fullmatch(r'[A-Za-z0-9_-]{43,}', cred), cred        # url-safe
            assert len(base64.urlsafe_b64decode(cred + '=' * (-len(cred) % 4))) >= 16  # 128 bits
            assert cred != sid and sid not in cred and cred not in sid
        # A resume replaces the credential; the old one works until the new one is used.
        owner = peer_list[0]
        sid, old = sids[0], creds[0]
        await owner.close()
        await until(lambda: sid in a.suspends, what='parked')
        thief = await make(port=a.port)
        hello = {'v': 1, 'sid': sid, 'credential': old,
                 'state': wire.encode_state(F.encode_ack(0))}
        reply = await thief.connect('/', hello=hello)
        new = reply.data[wire.HANDSHAKE_KEY]['credential']
        assert reply.data[wire.HANDSHAKE_KEY]['resumed'] is True and reply.data['sid'] == sid
        assert new != old and new not in creds and re.fullmatch(r'[A-Za-z0-9_-]{43,}', new)
        await thief.send_frames([thief.ack()])                 # uses the resumed connection
        await thief.sync()
        late = await make(port=a.port)
        reply = await late.connect('/', hello=hello)           # the replaced credential
        assert reply.data[wire.HANDSHAKE_KEY]['refused'] == \
            UNKNOWN_SESSION
        assert sio_attached(a, sid) and a.disconnect_count(sid) == 0
    assert_no_errors(logs)


def sio_attached(a: Arena, sid: str) -> bool:
    session = a.sio.relio_registry.get(sid)
    return session is not None and session.attached


CREDENTIAL_LOGGERS = ('relio', 'socketio', 'socketio.server', 'socketio.client')
ENGINEIO_LOGGERS = ('engineio', 'engineio.server', 'engineio.client')


async def _resume_with_logging(logs, loggers: tuple[str, ...]) -> set[str]:
    """A relio client connects, its link is cut and it resumes, with every logger in ``loggers``
    at DEBUG and the server's and client's python-socketio/engine.io logging enabled; returns
    every credential the session had."""
    for name in loggers:
        logs.set_level(logging.DEBUG, logger=name)
    # Logger objects rather than logger=True: python-socketio would set the level of its global
    # loggers and add a handler for the rest of the process; caplog restores what it changed.
    a = Arena(logger=logging.getLogger('socketio.server'),
              engineio_logger=logging.getLogger('engineio.server'))
    async with serve_socketio(a.sio) as port, FaultProxy(port) as proxy:
        a.port = port
        client = relio.AsyncClient(logger=logging.getLogger('socketio.client'),
                                   engineio_logger=logging.getLogger('engineio.client'),
                                   **CLIENT_KW)
        resumed = asyncio.Event()
        client.on('relio_resume', resumed.set)
        try:
            await client.connect(proxy.url, transports=['websocket'], wait_timeout=5)
            sid = client.get_sid()
            creds = {client.relio_sessions['/'].credential}
            assert await client.call('echo', 1, timeout=5) == 1
            assert await proxy.cut() == 1
            await asyncio.wait_for(resumed.wait(), 10)
            assert await client.call('echo', 2, timeout=5) == 2
            creds.add(client.relio_sessions['/'].credential)
            creds.add(a.sio.relio_registry.get(sid).credential)
            assert client.get_sid() == sid and a.resumes == [sid] and len(creds) == 2
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(drain_timeout=0), 5)
            http = getattr(client.eio, 'http', None)
            if http is not None and not http.closed:
                await http.close()
    return creds


def _records_with(logs, creds: set[str], loggers: tuple[str, ...]) -> list[str]:
    found = []
    for record in logs.records:
        if record.name not in loggers:
            continue
        text = record.getMessage() + repr(record.args) + (record.exc_text or '')
        if any(cred in text for cred in creds):
            found.append(f'{record.name}: {record.getMessage()[:120]}')
    return found


@pytest.mark.timeout(30)
async def test_no_credential_in_relio_or_socketio_logs(logs):
    """A resume with relio and python-socketio logging at DEBUG: no credential in any record."""
    creds = await _resume_with_logging(logs, CREDENTIAL_LOGGERS)
    assert sum(r.name.startswith('socketio') for r in logs.records) > 5   # they did log
    assert any(r.name == 'relio' and 'resumed' in r.getMessage() for r in logs.records)
    assert not _records_with(logs, creds, CREDENTIAL_LOGGERS)


@pytest.mark.timeout(30)
async def test_no_credential_in_engineio_logs(logs):
    """The same with python-engineio's packet logging enabled."""
    creds = await _resume_with_logging(logs, ENGINEIO_LOGGERS)
    assert sum(r.name.startswith('engineio') for r in logs.records) > 5
    assert not _records_with(logs, creds, ENGINEIO_LOGGERS)
    # The CONNECT packets were logged, with the credential blanked out.
    assert sum('"credential":"<redacted>"' in r.getMessage() for r in logs.records) >= 4


@pytest.mark.timeout(30)
async def test_resume_of_a_connected_session_moves_it(logs):
    """The credential and state presented from a second connection while the first is still up:
    the session moves to the new connection, the old one is closed cleanly, no fork."""
    async with arena() as a, peers() as make:
        sio = a.sio
        old = relio.AsyncClient(reconnection=False, handle_sigint=False)
        old_got: list = []
        old_disconnects: list = []
        old.on('push', old_got.append)
        old.on('disconnect', lambda reason: old_disconnects.append(reason))
        try:
            await old.connect(f'http://127.0.0.1:{a.port}', transports=['websocket'],
                              auth={'name': 'old'}, wait_timeout=5)
            sid = old.get_sid()
            for i in range(3):
                await asyncio.wait_for(await sio.emit('push', f'before-{i}', to=sid), 5)
            await asyncio.wait_for(await old.emit('record', 'from old'), 5)
            session = old.relio_sessions['/']
            hello = {'v': 1, 'sid': sid, 'credential': session.credential,
                     'state': wire.encode_state(session.channel.resume_state())}
            new = await make(port=a.port)
            reply = await new.connect('/', hello=hello)
            info = reply.data[wire.HANDSHAKE_KEY]
            assert info['resumed'] is True and reply.data['sid'] == sid
            assert info['credential'] != hello['credential']
            await new.send_frames([new.ack()])
            # The old connection is closed cleanly: its client sees one disconnect.
            await until(lambda: old_disconnects, what='old client disconnect')
            await until(lambda: not old.connected and old.eio.state == 'disconnected',
                        what='old connection closed')
            assert old_got == ['before-0', 'before-1', 'before-2']
            # Messages now go to the new connection only.
            delivery = await sio.emit('push', 'after', to=sid)
            await new.wait_for(lambda: new.data_frames(), what='DATA at the new connection')
            assert [f.payload for f in new.data_frames()] == [app_payload(['push', 'after'])]
            await new.send_frames([new.ack()])
            await asyncio.wait_for(delivery, 5)
            assert old_got == ['before-0', 'before-1', 'before-2']
            # Same session: same sid, rooms, session data, records; one resume, no disconnect.
            assert await sio.get_session(sid) == {'name': 'old'}
            assert a.records[sid] == ['from old'] and a.resumes == [sid]
            assert sio.session_stats(sid)['resumes'] == 1 and a.disconnect_count(sid) == 0
            assert sio.relio_registry.get(sid).eio_sid == new.eio_sid
            assert len(old_disconnects) == 1
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.disconnect(drain_timeout=0), 5)
    assert_no_errors(logs)


@pytest.mark.timeout(30)
async def test_resume_onto_a_connection_that_has_a_session(logs):
    """Resume session B on a connection that already holds session A of the namespace: refused
    (one session per namespace and connection, as in Socket.IO), A and B left as they were."""
    cfg = relio.Config(session_ttl=1.0)
    async with arena(cfg) as a, peers() as make:
        sio = a.sio
        holder = await make(port=a.port)
        held = (await holder.connect('/')).data['sid']
        owner = await make(port=a.port)
        reply = await owner.connect('/')
        sid, credential = reply.data['sid'], reply.data[wire.HANDSHAKE_KEY]['credential']
        await owner.close()
        await until(lambda: sid in a.suspends, what='parked')
        hello = {'v': 1, 'sid': sid, 'credential': credential,
                 'state': wire.encode_state(F.encode_ack(0))}
        logs.clear()
        refused = await holder.connect('/', hello=hello)
        assert refused.packet_type == 4                    # CONNECT_ERROR, as python-socketio
        assert sio.relio_registry.get(held).attached and sio.relio_registry.get(held).eio_sid == \
            holder.eio_sid and a.disconnect_count(held) == 0
        assert not sio.relio_registry.get(sid).attached and sio.relio_parked_sessions == 1
        a.assert_consistent()
        # B is still resumable by its owner, from a connection of its own ...
        again = await make(port=a.port)
        reply = await again.connect('/', hello=hello)
        assert reply.data[wire.HANDSHAKE_KEY]['resumed'] is True and reply.data['sid'] == sid
        await again.close()
        # ... and, dropped again, expires after its TTL like any parked session.
        await until(lambda: a.disconnect_count(sid) == 1, timeout=cfg.session_ttl + 5,
                    what='expired')
        assert a.reason(sid) == 'session expired' and sid not in sio.relio_registry
        a.assert_consistent()
    assert_no_errors(logs)
