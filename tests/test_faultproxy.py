"""The TCP fault proxy itself (relio.demo.faultproxy: the demo's flaky link and the fault tests'
proxy), against a raw echo server: every fault does what it says, and its counters say what it did
to real bytes and connections (the fault tests rest their "the faults were real" on them).

A 'drop' blackhole discards whole websocket frames (``relio.demo.wsframes``): a frame cut in two
by a gap would be completed with later frames' bytes and delivered corrupted (a 4 MB payload of
the thread-based fault test once arrived with a wrong SHA-256 that way).
"""
from __future__ import annotations

import asyncio
import os

import pytest
import websocket

from relio.demo.faultproxy import Fault, FaultProxy, Schedule
from relio.demo.wsframes import DropUnits
from tests.support.servers import (
    echo_server,
    numbered_frame,
    websocket_frame_header,
    websocket_frame_server,
)
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(30)

WAIT = 5.0              # seconds: a guard against hanging, never a measure of speed


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), WAIT)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Whatever arrives until the connection ends (b'' if it just ends)."""
    data = b''
    for _ in range(1000):
        try:
            chunk = await asyncio.wait_for(reader.read(65536), WAIT)
        except ConnectionError:
            break
        if not chunk:
            break
        data += chunk
    return data


async def test_forward_delay_throttle_hold_drop_cut_partition():
    loop = asyncio.get_running_loop()
    async with echo_server() as port, FaultProxy(port) as proxy:
        reader, writer = await asyncio.open_connection('127.0.0.1', proxy.port)
        await proxy.wait_connections(1)
        # plain forwarding
        writer.write(b'hello')
        assert await read_exactly(reader, 5) == b'hello'
        assert (proxy.stats.bytes_up, proxy.stats.bytes_down) == (5, 5)
        # one-way delay: the byte arrives, late
        proxy.delay(0.2, 'up')
        t = loop.time()
        writer.write(b'x')
        assert await read_exactly(reader, 1) == b'x'
        assert loop.time() - t >= 0.18
        assert (proxy.stats.delayed_up, proxy.stats.delayed_down) == (1, 0)
        proxy.delay(0.0)
        # throttle: 60 kB at 200 kB/s, in slices (~0.3 s)
        proxy.throttle(200_000, 'down')
        t = loop.time()
        writer.write(b'a' * 60_000)
        assert await read_exactly(reader, 60_000) == b'a' * 60_000
        assert loop.time() - t >= 0.2
        assert (proxy.stats.throttled_up, proxy.stats.throttled_down) == (0, 60_000)
        proxy.throttle(None)
        # hold: stalled, then delivered intact
        proxy.blackhole('down', 0.3, mode='hold')
        t = loop.time()
        writer.write(b'held')
        assert await read_exactly(reader, 4) == b'held'
        assert loop.time() - t >= 0.25
        assert (proxy.stats.held_up, proxy.stats.held_down) == (0, 4)
        # drop: bytes vanish, the connection stays up
        proxy.blackhole('up', 0.3)
        writer.write(b'gone')
        await writer.drain()
        await until(lambda: proxy.stats.dropped_up == 4, WAIT, 'the bytes dropped')
        await until(lambda: not proxy.faulting, WAIT, 'the blackhole over')
        writer.write(b'back')
        assert await read_exactly(reader, 4) == b'back'
        assert (proxy.stats.dropped_up, proxy.stats.dropped_chunks_up) == (4, 1)
        assert proxy.stats.dropped_down == 0
        # cut: the client side sees the connection end
        assert await proxy.cut() == 1
        assert await read_until_closed(reader) == b''
        writer.transport.abort()
        # partition: new connections are refused for a while, then accepted again
        await proxy.partition(1.0)
        assert proxy.faulting
        r2, w2 = await asyncio.open_connection('127.0.0.1', proxy.port)
        assert await read_until_closed(r2) == b''
        w2.transport.abort()
        await until(lambda: not proxy.faulting, WAIT, 'the partition over')
        r3, w3 = await asyncio.open_connection('127.0.0.1', proxy.port)
        w3.write(b'ok')
        assert await read_exactly(r3, 2) == b'ok'
        w3.transport.abort()
        s = proxy.stats
        assert (s.cuts, s.partitions, s.connections_refused) == (2, 1, 1)
        assert (s.connections_accepted, s.connections_cut) == (2, 1)


async def test_stall_holds_every_connection_then_aborts_the_ones_it_froze():
    async with echo_server() as port, FaultProxy(port) as proxy:
        reader, writer = await asyncio.open_connection('127.0.0.1', proxy.port)
        try:
            writer.write(b'ping')
            assert await read_exactly(reader, 4) == b'ping'
            forwarded = proxy.stats.bytes_up
            stall = asyncio.create_task(proxy.stall(2.0))
            await until(lambda: proxy.stats.stalls == 1, WAIT, 'the stall')
            assert proxy.faulting
            writer.write(b'held')
            await until(lambda: proxy.stats.held_up == 4, WAIT, 'the bytes held')
            assert proxy.stats.bytes_up == forwarded              # nothing crossed
            # A connection opened during the stall waits, then works.
            late_reader, late_writer = await asyncio.open_connection('127.0.0.1', proxy.port)
            try:
                late_writer.write(b'late')
                await until(lambda: proxy.stats.held_up == 8, WAIT, 'the late bytes held')
                assert stall.done() is False, 'the stall ended before the late connection'
                assert await asyncio.wait_for(stall, WAIT) == 1    # one connection frozen
                assert await read_exactly(late_reader, 4) == b'late'
            finally:
                late_writer.close()
            # The connection that was open when the stall began did not survive it.
            assert await read_until_closed(reader) == b''
        finally:
            writer.close()
        s = proxy.stats
        assert (s.stalls, s.connections_stalled, s.connections_accepted) == (1, 1, 2)
        assert not proxy.faulting


async def test_a_background_schedule_is_faulting_until_its_last_fault_is_over():
    async with echo_server() as port, FaultProxy(port) as proxy:
        reader, writer = await asyncio.open_connection('127.0.0.1', proxy.port)
        await proxy.wait_connections(1)
        task = proxy.start_schedule([Fault(0.0, 'cut'), Fault(0.1, 'stall', seconds=0.3)])
        assert proxy.faulting
        assert await read_until_closed(reader) == b''
        writer.transport.abort()
        await asyncio.wait_for(task, WAIT)
        assert not proxy.faulting
        s = proxy.stats
        assert (s.cuts, s.connections_cut, s.stalls, s.faults_applied) == (1, 1, 1, 2)
        # close() cancels a schedule still running
        task = proxy.start_schedule([Fault(60.0, 'cut')])
    assert task.cancelled()
    assert proxy.stats.cuts == 1


def test_random_schedules_are_seeded():
    kinds = ('cut', 'blackhole', 'stall', 'throttle', 'delay', 'partition')
    a = Schedule.random(5, 10.0, kinds=kinds)
    b = Schedule.random(5, 10.0, kinds=kinds)
    c = Schedule.random(6, 10.0, kinds=kinds)
    assert a.faults == b.faults and a.faults != c.faults
    assert all(0 <= f.at < 10.0 for f in a.faults)
    assert sum(a.summary().values()) == len(a.faults)


def test_the_demo_plan_is_seeded_cuts_and_one_stall():
    plan = Schedule.cuts_and_stall(7, 6.0)
    assert plan == Schedule.cuts_and_stall(7, 6.0)
    assert plan != Schedule.cuts_and_stall(8, 6.0)
    assert plan.count('stall') == 1 and plan.count('cut') >= 1
    assert plan.count('cut') + plan.count('stall') == len(plan.faults)
    times = [f.at for f in plan.faults]
    assert times == sorted(times) and all(0 < t < 6.0 for t in times)
    for before, after in zip(plan.faults, plan.faults[1:], strict=False):   # no overlap
        assert after.at >= before.at + before.seconds


def test_refuses_a_non_loopback_upstream():
    with pytest.raises(ValueError):
        FaultProxy(80, '10.0.0.1')


# --- 'drop' blackholes discard whole websocket frames ---------------------------------------------
UPGRADE_REQUEST = (b'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                   b'Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n')


def _units(units: DropUnits, chunks: list[bytes]) -> list[bytes]:
    """The stream ``chunks`` as the units DropUnits finds in it (pieces joined per unit)."""
    found: list[bytearray] = []
    for chunk in chunks:
        pieces = units.split(chunk)
        assert b''.join(bytes(p) for p, _ in pieces) == chunk
        for piece, starts in pieces:
            if starts or not found:
                found.append(bytearray())
            found[-1] += piece
    return [bytes(u) for u in found]


def test_drop_units_are_the_websocket_frames_after_the_upgrade_however_the_stream_is_read():
    mask = b'\x01\x02\x03\x04'
    frames = [websocket_frame_header(n, mask=mask if n % 2 else b'') + os.urandom(n)
              for n in (0, 1, 125, 126, 65535, 65536, 70000)]
    stream = UPGRADE_REQUEST + b''.join(frames)
    expected = [UPGRADE_REQUEST, *frames]
    assert _units(DropUnits(), [stream]) == expected                     # one read
    small = UPGRADE_REQUEST + b''.join(frames[:4])                     # a byte at a time
    assert _units(DropUnits(), [bytes([b]) for b in small]) == \
        [*(bytes([b]) for b in UPGRADE_REQUEST), *frames[:4]]
    for cut in (1, 2, 3, 7, 9, 13, len(UPGRADE_REQUEST) + 1, len(UPGRADE_REQUEST) + 3,
                len(stream) - 1):                                      # every kind of split
        head = _units(DropUnits(), [stream[:cut], stream[cut:]])
        if cut <= len(UPGRADE_REQUEST):
            assert head[0] + head[1] == UPGRADE_REQUEST and head[2:] == frames
        else:
            assert head == expected


def test_drop_units_of_a_stream_without_an_upgrade_are_its_reads():
    polling = b'POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nContent-Length: 3\r\n\r\n40/'
    units = DropUnits()
    assert _units(units, [polling, b'more', b'bytes']) == [polling, b'more', b'bytes']
    raw = DropUnits()
    assert _units(raw, [b'\x82\x05hello', b'x' * 70_000, b'y']) == \
        [b'\x82\x05hello', b'x' * 70_000, b'y']        # no HTTP head: never framed


RECEIVE = 40            # frames the client reads
FRAME_SIZE = 65_600     # what a relio chunk of 64 KiB is on the wire, about


async def test_drop_blackholes_under_a_throttle_lose_whole_frames_never_cut_one():
    """The throttle forwards each frame in slices, so blackholes begin and end inside frames: the
    frames that begin during one are lost whole, every frame delivered is intact (before the
    proxy followed frames, the first gap spliced two frames into a corrupt one, and the client
    failed on the misaligned header after it)."""
    loop = asyncio.get_running_loop()
    async with websocket_frame_server(4 * RECEIVE, FRAME_SIZE, 0.02) as port, \
            FaultProxy(port) as proxy:
        proxy.throttle(3_000_000, 'down')        # about the server's pace: a frame in ~22 ms

        def receive() -> tuple[list[bytes], Exception | None]:
            ws = websocket.create_connection(f'ws://127.0.0.1:{proxy.port}/', timeout=WAIT)
            loop.call_soon_threadsafe(blackholes)     # once the handshake is through
            frames: list[bytes] = []
            try:
                for _ in range(RECEIVE):
                    frames.append(ws.recv())
            except websocket.WebSocketException as exc:
                return frames, exc
            finally:
                ws.shutdown()
            return frames, None

        def blackholes() -> None:
            for k in range(1, 40):
                loop.call_later(0.1 * k, proxy.blackhole, 'down', 0.03)

        got, error = await asyncio.to_thread(receive)
    numbers = [int.from_bytes(frame[:8], 'big') for frame in got]
    corrupted = [n for n, frame in zip(numbers, got, strict=True)
                 if frame != numbered_frame(n, FRAME_SIZE)]
    assert not corrupted, f'a corrupted frame among {numbers}'
    assert error is None
    assert numbers == sorted(set(numbers)) and numbers[-1] >= RECEIVE      # some lost, whole
    assert proxy.stats.dropped_chunks_down >= 1
