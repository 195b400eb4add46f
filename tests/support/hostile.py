"""A hand-driven relio peer for hostile-client tests: it speaks engine.io v4 over a websocket, the
socket.io CONNECT exchange and relio's carrier by hand, so that a test can send anything at all
(frames the encoders refuse to write come from :mod:`tests.support.frames`).

    async with HostilePeer(port) as peer:              # engine.io connection (websocket)
        reply = await peer.connect('/')                # CONNECT with {"__relio": {"v": 1}}
        await peer.send_batch(F.encode_batch([...]))   # one carrier message for '/'
        await peer.sync()                              # the server has processed what came before
        peer.closes('/')                               # CLOSE frames the server sent on '/'

Everything here is client-side bookkeeping of what the peer sent and what it got; nothing reaches
into the server. ``sync()`` is a round trip at the engine.io level (UPGRADE -> NOOP): engine.io
handles a connection's packets in order, and the message handlers relio installs for carrier
messages run without suspending, so once the NOOP arrives every earlier message of this connection
has been processed by the server (effects the server schedules with ``call_soon`` or in tasks may
still be on their way: poll for those).

The peer answers engine.io PINGs (so the connection lives) unless ``answer_pings=False``; it never
acknowledges relio DATA unless the test calls :meth:`ack`.
"""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiohttp
from socketio import packet as sio_packet

from relio.binding import wire
from relio.engine import _frames as F

__all__ = ['HostilePeer', 'PeerClosed', 'app_payload', 'MsgIds']


#: What a relio client says in its CONNECT (under ``wire.HANDSHAKE_KEY``).
DEFAULT_HELLO = {'v': wire.HANDSHAKE_VERSION}


class PeerClosed(Exception):
    """The server closed the engine.io connection (or it failed) while the peer waited."""


def app_payload(items: list) -> bytes:
    """A relio application payload without attachments: 0x00 + compact JSON."""
    return b'\x00' + json.dumps(items, separators=(',', ':')).encode()


class MsgIds:
    """16-byte message ids: a random 8-byte prefix and a counter (as the reference sender)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8)
        self.counter = 0

    def __call__(self) -> bytes:
        self.counter += 1
        return self.prefix + self.counter.to_bytes(8, 'big')


class _Namespace:
    """What the peer knows about its relio session on one namespace."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sid: str | None = None
        self.credential: str | None = None
        self.next_seq = 0                      # our next DATA sequence number
        self.ids = MsgIds()
        self.frames: list[Any] = []            # every frame the server sent on it, decoded
        self.received: set[int] = set()        # server DATA seqs received
        self.last_ack: Any = None              # the latest ACK frame the server sent
        self.disconnected = asyncio.Event()    # socket.io DISCONNECT for this namespace


class HostilePeer:
    """One engine.io v4 websocket connection to a relio server, driven by hand."""

    def __init__(self, port: int, *, session: aiohttp.ClientSession | None = None,
                 answer_pings: bool = True, path: str = 'socket.io', timeout: float = 5.0,
                 keep_frames: bool = True):
        self.url = f'ws://127.0.0.1:{port}/{path}/?EIO=4&transport=websocket'
        self.answer_pings = answer_pings
        self.timeout = timeout
        #: Keep every frame received (False: only CLOSE frames and the latest ACK, so that a
        #: long flood does not grow the peer's own memory; DATA seqs are still tracked).
        self.keep_frames = keep_frames
        self._own_session = session is None
        self._session = session
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self.eio_sid: str | None = None
        self.open_data: dict = {}
        self.ns: dict[str, _Namespace] = {}
        self.packets: list[Any] = []           # socket.io packets received (decoded)
        self.binary_messages = 0               # raw binary messages received
        self.bad_carriers = 0                  # binary messages that were not valid carriers
        self.closed = asyncio.Event()          # the engine.io connection ended
        self._connect_waiters: dict[str, asyncio.Future] = {}
        self._noops: asyncio.Queue = asyncio.Queue()
        self._changed = asyncio.Event()

    # --- life cycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> HostilePeer:
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            self._ws = await asyncio.wait_for(
                self._session.ws_connect(self.url, autoping=True, max_msg_size=0), self.timeout)
            msg = await asyncio.wait_for(self._ws.receive(), self.timeout)
            if msg.type != aiohttp.WSMsgType.TEXT or not msg.data.startswith('0'):
                raise PeerClosed(f'no engine.io OPEN packet: {msg!r}')
            self.open_data = json.loads(msg.data[1:])
            self.eio_sid = self.open_data['sid']
        except BaseException:
            await self.close()
            raise
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def close(self) -> None:
        """Close the websocket (the server sees the transport close: relio sessions are parked)."""
        if self._ws is not None and not self._ws.closed:
            try:
                await asyncio.wait_for(self._ws.close(), self.timeout)
            except (asyncio.TimeoutError, aiohttp.ClientError, ConnectionError):
                pass
        if self._reader is not None:
            if not self._reader.done():
                self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        self.closed.set()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # --- reading ---------------------------------------------------------------------------------
    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._on_binary(msg.data)
                else:               # CLOSE, CLOSING, CLOSED, ERROR
                    break
                self._changed.set()
        finally:
            self.closed.set()
            self._changed.set()
            for fut in self._connect_waiters.values():
                if not fut.done():
                    fut.set_exception(PeerClosed('connection closed'))

    async def _on_text(self, text: str) -> None:
        kind = text[:1]
        if kind == '2':                       # engine.io PING
            if self.answer_pings:
                await self._ws.send_str('3' + text[1:])
        elif kind == '6':                     # NOOP: answer to our UPGRADE (sync)
            self._noops.put_nowait(None)
        elif kind == '1':                     # engine.io CLOSE
            self.closed.set()
        elif kind == '4':
            pkt = sio_packet.Packet(encoded_packet=text[1:])
            self.packets.append(pkt)
            name = pkt.namespace or '/'
            if pkt.packet_type in (sio_packet.CONNECT, sio_packet.CONNECT_ERROR):
                fut = self._connect_waiters.pop(name, None)
                if fut is not None and not fut.done():
                    fut.set_result(pkt)
            elif pkt.packet_type == sio_packet.DISCONNECT and name in self.ns:
                self.ns[name].disconnected.set()

    def _on_binary(self, data: bytes) -> None:
        self.binary_messages += 1
        try:
            name, batch = wire.split_carrier(data)
            frames = F.decode_batch(batch)
        except Exception:
            self.bad_carriers += 1
            return
        ns = self.ns.get(name)
        if ns is None:
            self.bad_carriers += 1
            return
        for frame in frames:
            if isinstance(frame, F.DataFrame):
                ns.received.add(frame.seq)
            if self.keep_frames or isinstance(frame, F.CloseFrame):
                ns.frames.append(frame)
            if isinstance(frame, F.AckFrame):
                ns.last_ack = frame

    # --- socket.io handshake ---------------------------------------------------------------------
    async def connect(self, namespace: str = '/', auth: Any = None,
                      hello: Any = DEFAULT_HELLO, raw_auth: Any = ...) -> Any:
        """Send a socket.io CONNECT for ``namespace`` (auth + ``{"__relio": hello}``, or exactly
        ``raw_auth``) and return the server's answer (a socket.io packet: CONNECT or CONNECT_ERROR).
        A relio CONNECT reply sets up the peer's bookkeeping for the namespace (fresh seqs)."""
        if raw_auth is ...:
            data = dict(auth or {})
            if hello is not None:
                data[wire.HANDSHAKE_KEY] = hello
        else:
            data = raw_auth
        fut = asyncio.get_running_loop().create_future()
        self._connect_waiters[namespace] = fut
        await self.send_packet(sio_packet.Packet(sio_packet.CONNECT, data=data,
                                                 namespace=namespace))
        pkt = await asyncio.wait_for(fut, self.timeout)
        if pkt.packet_type == sio_packet.CONNECT:
            ns = _Namespace(namespace)
            ns.sid = pkt.data.get('sid') if isinstance(pkt.data, dict) else None
            info = pkt.data.get(wire.HANDSHAKE_KEY) if isinstance(pkt.data, dict) else None
            if isinstance(info, dict):
                ns.credential = info.get('credential')
            self.ns[namespace] = ns
        return pkt

    async def send_packet(self, pkt: Any) -> None:
        encoded = pkt.encode()
        assert isinstance(encoded, str)
        await self._ws.send_str('4' + encoded)

    async def disconnect_namespace(self, namespace: str = '/') -> None:
        """socket.io DISCONNECT (a clean leave, without relio's CLOSE)."""
        await self.send_packet(sio_packet.Packet(sio_packet.DISCONNECT, namespace=namespace))

    # --- sending ---------------------------------------------------------------------------------
    async def send_binary(self, data: bytes) -> None:
        """One raw engine.io binary message (a carrier, or anything)."""
        await self._ws.send_bytes(data)

    async def send_text(self, text: str) -> None:
        await self._ws.send_str(text)

    async def send_batch(self, batch: bytes, namespace: str = '/') -> None:
        await self.send_binary(wire.carrier_prefix(namespace) + batch)

    async def send_frames(self, frames: list[bytes], namespace: str = '/') -> None:
        await self.send_batch(F.encode_batch(frames), namespace)

    def data(self, items: list | None = None, *, namespace: str = '/', request: bool = False,
             payload: bytes | None = None, seq: int | None = None, msg_id: bytes | None = None,
             flags: int | None = None, **kw: Any) -> bytes:
        """A DATA frame of this peer's session on ``namespace`` (next seq, new id unless given)."""
        ns = self.ns[namespace]
        if seq is None:
            seq = ns.next_seq
            ns.next_seq += 1
        if payload is None:
            payload = app_payload(items if items is not None else ['noop'])
        if flags is None:
            flags = F.REQUEST if request else 0
        return F.encode_data(seq, msg_id or ns.ids(), payload, flags=flags, **kw)

    def ack(self, namespace: str = '/') -> bytes:
        """An ACK frame for every server DATA frame received on ``namespace``."""
        received = self.ns[namespace].received
        cumulative = 0
        while cumulative in received:
            cumulative += 1
        ranges: list[tuple[int, int]] = []
        for seq in sorted(s for s in received if s > cumulative):
            if ranges and ranges[-1][1] == seq:
                ranges[-1] = (ranges[-1][0], seq + 1)
            else:
                ranges.append((seq, seq + 1))
        return F.encode_ack(cumulative, ranges[:32])

    # --- observing -------------------------------------------------------------------------------
    async def sync(self) -> None:
        """Round trip (engine.io UPGRADE -> NOOP): the server has handled what we sent before."""
        if self.closed.is_set():
            raise PeerClosed('connection closed')
        await self._ws.send_str('5')
        get = asyncio.ensure_future(self._noops.get())
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            done, _ = await asyncio.wait({get, closed}, timeout=self.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (get, closed):
                if not task.done():
                    task.cancel()
            await asyncio.gather(get, closed, return_exceptions=True)
        if get not in done or get.cancelled():
            raise PeerClosed('connection closed' if self.closed.is_set() else 'sync timed out')

    async def wait_for(self, predicate, timeout: float | None = None, what: str = 'condition'):
        """Wait (bounded) until ``predicate()`` holds; re-checked whenever something arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or self.timeout)
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f'timed out waiting for {what}')
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
            except asyncio.TimeoutError:
                pass
        return True

    def closes(self, namespace: str = '/') -> list[Any]:
        """The CLOSE frames the server sent on ``namespace``."""
        ns = self.ns.get(namespace)
        return [f for f in ns.frames if isinstance(f, F.CloseFrame)] if ns else []

    def acks(self, namespace: str = '/') -> list[Any]:
        ns = self.ns.get(namespace)
        return [f for f in ns.frames if isinstance(f, F.AckFrame)] if ns else []

    def data_frames(self, namespace: str = '/') -> list[Any]:
        ns = self.ns.get(namespace)
        return [f for f in ns.frames if isinstance(f, F.DataFrame)] if ns else []

    @staticmethod
    def acked_seqs(ack: Any) -> set[int]:
        """Every seq an ACK frame acknowledges ((start, end) ranges are half-open)."""
        seqs = set(range(ack.cumulative))
        for start, end in ack.ranges:
            seqs.update(range(start, end))
        return seqs
