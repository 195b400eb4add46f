"""Fuzzing relio's parsers and the engine's receive path with Hypothesis (coverage-guided-ish).

Targets, and the contract each one is held to whatever bytes it is fed:

* ``relio.engine._frames.decode_batch`` / ``check_batch_header`` (the wire decoder),
* ``relio.Engine.receive``, ``Engine.resume`` and ``Engine.restore`` (the engine's input paths),
* ``relio.binding.payload.decode`` (the application payload inside a message),
* ``relio.binding.wire.split_carrier`` (the namespace prefix of a carrier message).

Only :class:`relio.RemoteProtocolError` may escape (never another exception, never a crash, never a
hang), and an engine that raised is closed (reason ``protocol error: <reason>``) and stays usable
for ``close()``/``stats``/``receive()``/``data_to_send()``. Beyond that contract the tests use a few
oracles that need no hand-written expectations:

* a pure-Python decoder written from docs/PROTOCOL.md (section 3-5) must agree with ``decode_batch``
  on accept/reject and on every decoded field (differential testing);
* whatever the engine accepted, ``decode_batch`` accepts too (unless a CLOSE ended the batch);
* everything the engine sends afterwards decodes under its own limits (hostile input never makes
  the engine emit an invalid batch), and its memory gauges stay within the ``Config`` bounds;
* a snapshot ``restore`` accepted must ``snapshot()`` again and restore to the identical bytes,
  and what the restored engine sends after ``resume`` must carry exactly the snapshot's messages;
* a stateful fuzzer runs two engines through legitimate traffic (requests, retries, chunked
  messages, a lossy and breaking link) and snapshots/restores either side at any moment: no
  engine may raise at all, and every message arrives exactly once.

Seeds come from the checked-in corpus ``tests/corpus/<target>/*.bin`` (valid batches of every frame
type, chunked messages, acks with ranges, resume states, snapshots, payloads with attachments, and
interesting invalid inputs), described in ``tests/corpus/MANIFEST.json`` (outcome and a summary of
what each file decodes to). :func:`build_corpus` makes them and :func:`write_corpus` writes them
(``python -m tests.test_fuzz`` rewrites the corpus); ``test_corpus_decodes_as_recorded`` checks that
each file still decodes exactly as recorded. The fuzz tests mutate corpus entries (bit flips,
interesting bytes, truncation, insertion, duplication, splicing, and, through a field walker that
knows the formats, varint fields set to the boundary values 0/63/64/16383/16384/2^30/2^62-1 or
moved by +-1, e.g. length fields), and also feed structured-but-hostile frames built with
``relio.engine._frames.encode_*``.

Budget: the whole file runs in well under 60 s. ``RELIO_FUZZ_EXAMPLES=N`` runs N examples per fuzz
test instead (long local runs).

Bugs found so far are named regression tests at the end of the file (and ``regress-*`` corpus
files, recorded as the RemoteProtocolError they must raise); those not fixed yet fail, and so may
the fuzz tests that keep finding them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pathlib
import struct
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from relio.engine import _frames as F
from relio.binding import payload as payload_codec
from relio.binding import wire
from relio.engine._engine import Engine
from relio.engine._events import (MessageExpired, MessageReceived, MessagesDelivered, ResponseReceived,
                           SessionClosed)
from relio.config import DEFAULT_CONFIG, Config
from relio.engine.errors import QueueFull, RemoteProtocolError
from tests.support.frames import raw_ack, raw_close, raw_data, varint

CORPUS = pathlib.Path(__file__).parent / "corpus"
MANIFEST = CORPUS / "MANIFEST.json"
TARGETS = ("frames", "engine", "resume", "restore", "payload", "carrier")

# Small limits, so that short inputs reach every bound (windows, reorder and reassembly memory,
# pending requests, the id set, the response cache, ack ranges).
SMALL = Config(chunk_size=64, coalesce_bytes=512, max_batch_size=4096, max_message_size=1024,
               receive_window=128, max_inflight_messages=64, max_reorder_bytes=512,
               max_reassemblies=2, max_reassembly_bytes=1024, max_ack_ranges=8,
               id_set_capacity=64, response_cache_entries=4, max_pending_requests=4,
               max_outbox_messages=32, max_outbox_bytes=8192)
# Another set of limits for restore (a snapshot must fit the restoring engine's limits).
TIGHT = SMALL.replace(receive_window=64, max_inflight_messages=16, max_ack_ranges=2,
                      id_set_capacity=8, response_cache_entries=1, max_outbox_messages=4,
                      max_reorder_bytes=64)

VARINT_LIMIT = 1 << 62
BOUNDARY = (0, 1, 63, 64, 16383, 16384, 2**30 - 1, 2**30, 2**62 - 1)


def budget(ci: int) -> int:
    """Examples per fuzz test: ``ci`` in CI, ``$RELIO_FUZZ_EXAMPLES`` for long runs."""
    env = os.environ.get("RELIO_FUZZ_EXAMPLES")
    return int(env) if env else ci


def fuzz_settings(ci: int):
    return settings(max_examples=budget(ci), deadline=timedelta(seconds=5),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# =================================================================================================
# Encoding helpers (non-minimal varints and raw frames the encoders refuse to write come from
# tests.support.frames)

def batch(*frames) -> bytes:
    return F.encode_batch(list(frames))


def mid(tag: str, n: int) -> bytes:
    """A 16-byte message id."""
    return (tag.encode() * 8)[:8] + n.to_bytes(8, "big")


def app(*items) -> bytes:
    return payload_codec.encode(list(items))


# =================================================================================================
# A pure-Python decoder written from docs/PROTOCOL.md, sections 3-5 (the differential oracle), that
# also records where each field is (the field walker the structured mutations use).

class Reject(Exception):
    pass


def _read_varint(buf, pos, end, fields, name):
    if pos >= end:
        raise Reject(f"missing {name}")
    n = 1 << (buf[pos] >> 6)
    if pos + n > end:
        raise Reject(f"{name} needs {n} bytes")
    value = buf[pos] & 0x3F
    for i in range(1, n):
        value = (value << 8) | buf[pos + i]
    if fields is not None:
        fields.append((pos, n, name))
    return value, pos + n


def ref_parse_frame(buf, pos, end, max_ranges, fields=None):
    """One frame at ``pos``: (frame tuple, next position). Frame tuples:
    ("DATA", flags, seq, msg_id, reply_to, total, offset, payload), ("ACK", cumulative, delay,
    ranges), ("CLOSE", code, reason)."""
    if pos >= end:
        raise Reject("expected a frame")
    kind = buf[pos]
    if fields is not None:
        fields.append((pos, 1, "type"))
    pos += 1
    if kind == F.DATA:
        if pos >= end:
            raise Reject("missing flags")
        flags = buf[pos]
        if fields is not None:
            fields.append((pos, 1, "flags"))
        pos += 1
        if flags & ~0x07:
            raise Reject("unknown flags")
        seq, pos = _read_varint(buf, pos, end, fields, "seq")
        if pos + 16 > end:
            raise Reject("msg_id")
        msg_id = bytes(buf[pos:pos + 16])
        pos += 16
        reply_to = None
        if flags & F.RESPONSE:
            if pos + 16 > end:
                raise Reject("reply_to")
            reply_to = bytes(buf[pos:pos + 16])
            pos += 16
        total = offset = 0
        if flags & F.CHUNK:
            total, pos = _read_varint(buf, pos, end, fields, "total")
            offset, pos = _read_varint(buf, pos, end, fields, "offset")
        length, pos = _read_varint(buf, pos, end, fields, "length")
        if length > end - pos:
            raise Reject("payload past the end")
        if flags & F.CHUNK:
            if total == 0 or length == 0 or offset >= total or length > total - offset:
                raise Reject("bad chunk")
        payload = bytes(buf[pos:pos + length])
        return ("DATA", flags, seq, msg_id, reply_to, total, offset, payload), pos + length
    if kind == F.ACK:
        cumulative, pos = _read_varint(buf, pos, end, fields, "cumulative")
        delay, pos = _read_varint(buf, pos, end, fields, "ack_delay")
        count, pos = _read_varint(buf, pos, end, fields, "range_count")
        if count > max_ranges:
            raise Reject("too many ranges")
        ranges, previous = [], cumulative
        for _ in range(count):
            gap, pos = _read_varint(buf, pos, end, fields, "gap")
            length, pos = _read_varint(buf, pos, end, fields, "range_length")
            if gap == 0 or length == 0:
                raise Reject("zero gap or length")
            start = previous + gap
            previous = start + length
            if previous >= VARINT_LIMIT:
                raise Reject("beyond seq space")
            ranges.append((start, previous))
        return ("ACK", cumulative, delay, ranges), pos
    if kind == F.CLOSE:
        code, pos = _read_varint(buf, pos, end, fields, "close_code")
        length, pos = _read_varint(buf, pos, end, fields, "reason_length")
        if length > 256:
            raise Reject("reason too long")
        if length > end - pos:
            raise Reject("reason past the end")
        reason = bytes(buf[pos:pos + length]).decode("utf-8", "replace")
        return ("CLOSE", code, reason), pos + length
    raise Reject("unknown frame type")


def ref_decode_batch(data, max_batch_size=131072, max_frames=4096, max_ranges=32, fields=None):
    if len(data) < 2 or len(data) > max_batch_size or data[0] != F.VERSION:
        raise Reject("bad batch header")
    pos, frames = 1, []
    while pos < len(data):
        if len(frames) >= max_frames:
            raise Reject("too many frames")
        frame, pos = ref_parse_frame(data, pos, len(data), max_ranges, fields)
        frames.append(frame)
    return frames


def as_tuple(frame):
    """decode_batch's frame objects as the reference decoder's tuples."""
    if isinstance(frame, F.DataFrame):
        return ("DATA", frame.flags, frame.seq, frame.msg_id, frame.reply_to, frame.total,
                frame.offset, frame.payload)
    if isinstance(frame, F.AckFrame):
        return ("ACK", frame.cumulative, frame.ack_delay_us, [tuple(r) for r in frame.ranges])
    return ("CLOSE", frame.code, frame.reason)


def encode_tuple(frame) -> bytes:
    kind = frame[0]
    if kind == "DATA":
        _, flags, seq, msg_id, reply_to, total, offset, payload = frame
        return F.encode_data(seq, msg_id, payload, flags=flags, reply_to=reply_to, total=total,
                             offset=offset)
    if kind == "ACK":
        return F.encode_ack(frame[1], frame[3], frame[2])
    return F.encode_close(frame[1], frame[2])


def batch_fields(data: bytes, start: int = 1) -> list:
    """(position, size, name) of every field the reference parser got through (stops at the first
    invalid one). ``start=0`` walks a resume state (one frame, no version byte)."""
    fields: list = []
    pos = start
    try:
        while pos < len(data):
            _, pos = ref_parse_frame(data, pos, len(data), 1 << 62, fields)
    except Reject:
        pass
    return fields


def snapshot_fields(data: bytes, messages: dict | None = None) -> list:
    """(position, size, name) of every varint (size 1-8) and f64 (name "f64:...") of a session
    snapshot, per the snapshot appendix of docs/PROTOCOL.md (stops at the first invalid field).
    ``messages`` receives {msg_id: (flags, reply_to, payload)} of the messages it holds (outbox
    and cached responses)."""
    fields: list = []
    messages = {} if messages is None else messages
    end = len(data)
    pos = 14

    def varint(name):
        nonlocal pos
        value, pos = _read_varint(data, pos, end, fields, name)
        return value

    def raw(n):
        nonlocal pos
        if pos + n > end:
            raise Reject("raw")
        pos += n
        return data[pos - n:pos]

    def f64(name):
        nonlocal pos
        if pos + 8 > end:
            raise Reject("f64")
        fields.append((pos, 8, "f64:" + name))
        pos += 8

    def blob(name):
        return raw(min(varint("blob_length:" + name), 1 << 40))

    try:
        if data[:14] != b"relio-session\0":
            return fields
        for name in ("version", "prefix_hi", "prefix_lo", "counter"):
            varint(name)
        for name in ("srtt", "rttvar", "rto"):
            f64(name)
        varint("has_rtt")
        for _ in range(min(varint("count:messages"), 10_000)):
            msg_id = raw(16)
            flags = varint("message_flags")
            reply_to = raw(16) if flags & F.RESPONSE else None
            messages.setdefault(msg_id, (flags, reply_to, blob("message")))
            varint("framed")
            f64("age")
        varint("send_base")
        varint("snd_next")
        for _ in range(min(varint("count:inflight"), 10_000)):
            for name in ("inflight_seq", "message_index", "chunk_offset", "frame_length",
                         "transmissions"):
                varint(name)
        for _ in range(min(varint("count:queue"), 10_000)):
            varint("queue_index")
        varint("receive_base")
        if varint("chunk_stream"):
            raw(16)
            varint("chunk_stream_total")
            blob("chunk_stream")
        for _ in range(min(varint("count:held"), 10_000)):
            varint("held_seq")
            flags = varint("held_flags")
            raw(16)
            if flags & F.RESPONSE:
                raw(16)
            if flags & F.CHUNK:
                varint("held_total")
                varint("held_offset")
            blob("held")
        for name in ("count:ids", "count:awaiting"):
            for _ in range(min(varint(name), 100_000)):
                raw(16)
        for _ in range(min(varint("count:cache"), 10_000)):
            key = raw(16)
            value = blob("cached")
            if len(value) >= 17:
                messages.setdefault(value[:16], (value[16] | F.RESPONSE, key, value[17:]))
            f64("cache_age")
        for i in range(11):
            varint(f"counter{i}")
    except Reject:
        pass
    return fields


def payload_fields(data: bytes) -> list:
    """(position, size, name) of the LEB128 varints of an application payload (count, lengths)."""
    fields: list = []
    if not data or data[0] == 0:
        return fields
    pos = 0

    def varint(name):
        nonlocal pos
        start, value, shift = pos, 0, 0
        while True:
            if pos >= len(data) or shift > 56:
                raise Reject(name)
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                fields.append((start, pos - start, name))
                return value
            shift += 7

    try:
        for _ in range(min(varint("count"), 1000)):
            size = varint("attachment_length")
            pos += size
    except Reject:
        pass
    return fields


def leb128(value: int) -> bytes:
    return payload_codec._varint(value)


# =================================================================================================
# The engines the corpus and the fuzzers feed

REF_PREFIX = b"fuzz-ref"
PEER_PREFIX = b"fuzzpeer"
REF_IDS = [REF_PREFIX + i.to_bytes(8, "big") for i in range(4)]
PEER_IDS = [PEER_PREFIX + i.to_bytes(8, "big") for i in range(8)]
BLOB = bytes(range(150))


def ref_engine(config: Config = SMALL) -> tuple[Engine, list[bytes]]:
    """The engine every ``engine`` corpus batch is fed to: it has sent (at time 0) a plain message,
    a request, a chunked message (3 chunks with SMALL) and another request, none acknowledged."""
    e = Engine(config, now=0.0, id_prefix=REF_PREFIX)
    e.send(app("hello", 1), 0.0)                       # REF_IDS[0], seq 0
    e.send(app("ask", 2), 0.0, request=True)           # REF_IDS[1], seq 1
    e.send(app("blob", BLOB), 0.0)                     # REF_IDS[2], seqs 2-4 (chunked)
    e.send(app("ask", 3), 0.0, request=True)           # REF_IDS[3], seq 5
    return e, e.data_to_send(0.0)


def resume_engine(config: Config = SMALL) -> Engine:
    """The engine every ``resume`` corpus state is given to: ``ref_engine`` after an ACK of seqs
    0-1 and 3, disconnected (so a cumulative below 2 means the peer lost acknowledged frames)."""
    e, _ = ref_engine(config)
    e.receive(batch(F.encode_ack(2, [(3, 4)])), 0.5)
    e.events()
    e.disconnect(1.0)
    return e


def peer_session() -> tuple[Engine, list[bytes]]:
    """A real peer's batches for ``ref_engine``: it received the reference's messages, answers
    both requests (the second with a chained reply) and sends its own messages."""
    ref, out = ref_engine()
    peer = Engine(SMALL, now=0.0, id_prefix=PEER_PREFIX)
    for b in out:
        peer.receive(b, 0.01)
    for ev in peer.events():
        if isinstance(ev, MessageReceived) and ev.request:
            peer.reply(ev.msg_id, app("answer"), 0.01, request=ev.msg_id == REF_IDS[3])
    peer.send(app("event", {"k": [1, 2, None]}), 0.01)
    peer.send(app("call", "x"), 0.01, request=True)
    peer.send(app("upload", bytes(range(200))), 0.01)
    peer.send(app("att", b"a", [b"b", {"c": b""}]), 0.01)
    return peer, peer.data_to_send(0.02)


# =================================================================================================
# Running one input through a target, as recorded in the manifest

def _h(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def _event_summary(ev) -> list:
    if isinstance(ev, MessageReceived):
        return ["received", ev.msg_id.hex(), _h(ev.payload), len(ev.payload), bool(ev.request)]
    if isinstance(ev, ResponseReceived):
        return ["response", ev.msg_id.hex(), ev.reply_to.hex(), _h(ev.payload),
                bool(ev.request)]
    if isinstance(ev, MessagesDelivered):
        return ["delivered", [m.hex() for m in ev.msg_ids]]
    if isinstance(ev, MessageExpired):
        return ["expired", ev.msg_id.hex(), ev.reason]
    if isinstance(ev, SessionClosed):
        return ["closed", ev.reason, bool(ev.by_peer)]
    return ["unknown", repr(ev)]


def _frame_summary(frame) -> list:
    t = as_tuple(frame)
    if t[0] == "DATA":
        return ["DATA", t[1], t[2], t[3].hex(), t[4].hex() if t[4] else None, t[5], t[6],
                len(t[7]), _h(t[7])]
    if t[0] == "ACK":
        return ["ACK", t[1], t[2], [list(r) for r in t[3]]]
    return list(t)


ENGINE_STATS = ("messages_received", "messages_delivered", "messages_expired",
                "duplicates_dropped", "frames_refused", "held_frames", "held_bytes",
                "reassembly_bytes", "outbox_messages", "in_flight_frames",
                "frames_retransmitted", "cached_responses")


def _engine_summary(e: Engine, events) -> dict:
    stats = e.stats
    return {"events": [_event_summary(ev) for ev in events],
            "stats": {k: stats[k] for k in ENGINE_STATS},
            "closed": e.closed, "close_reason": e.close_reason,
            "awaiting_reply": sorted(i.hex() for i in e.awaiting_reply)}


def _jsonable(obj):
    if isinstance(obj, bytes):
        return {"$bytes": obj.hex()}
    if isinstance(obj, list):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"$float": repr(obj)}
    return obj


def run_target(target: str, data: bytes) -> dict:
    """What ``data`` does to ``target``: {"outcome": "ok", "summary": ...} or {"outcome":
    "error", "reason": ...} for RemoteProtocolError; any other exception propagates."""
    try:
        if target == "frames":
            F.check_batch_header(data, 131072)
            frames = [_frame_summary(f) for f in F.decode_batch(data)]
            return {"outcome": "ok", "summary": {"count": len(frames), "first": frames[:8],
                                                 "all": _h(json.dumps(frames).encode())}}
        if target == "engine":
            e, _ = ref_engine()
            try:
                e.receive(data, 1.0)
            finally:
                events = e.events()
            return {"outcome": "ok", "summary": _engine_summary(e, events)}
        if target == "resume":
            e = resume_engine()
            e.resume(data, 2.0)
            events = e.events()
            sent = [_frame_summary(f)[:3] for b in e.data_to_send(2.0)
                    for f in F.decode_batch(b)]
            return {"outcome": "ok", "summary": {**_engine_summary(e, events), "sent": sent}}
        if target == "restore":
            e = Engine.restore(data, SMALL, now=3.0)
            return {"outcome": "ok", "summary": {**_engine_summary(e, []),
                                                 "same_snapshot": e.snapshot(3.0) == data}}
        if target == "payload":
            return {"outcome": "ok", "summary": _jsonable(payload_codec.decode(data))}
        if target == "carrier":
            namespace, rest = wire.split_carrier(data)
            return {"outcome": "ok", "summary": [namespace, len(rest), _h(rest)]}
    except RemoteProtocolError as exc:
        return {"outcome": "error", "reason": exc.reason}
    raise ValueError(target)


# =================================================================================================
# The corpus

def build_corpus() -> dict[str, dict[str, bytes]]:
    """{target: {file name: bytes}}. Names start with ``ok-`` (valid), ``bad-`` (invalid: must
    raise RemoteProtocolError) or ``regress-`` (found by fuzzing; must raise RemoteProtocolError)."""
    P, R = PEER_IDS, REF_IDS
    d = F.encode_data
    chunks = [d(i, P[2], BLOB[o:o + 64], flags=F.CHUNK, total=150, offset=o)
              for i, o in enumerate((0, 64, 128))]
    _, peer_batches = peer_session()

    frames = {
        "ok-data-plain": batch(d(0, P[0], app("m", 1))),
        "ok-data-empty-payload": batch(d(7, P[0], b"")),
        "ok-data-request": batch(d(1, P[1], app("call"), flags=F.REQUEST)),
        "ok-data-response": batch(d(2, P[1], app(42), flags=F.RESPONSE, reply_to=R[1])),
        "ok-data-chained-reply": batch(d(3, P[3], app("more?"), flags=F.RESPONSE | F.REQUEST,
                                         reply_to=R[3])),
        "ok-chunked-message": batch(*chunks),
        "ok-chunk-request": batch(d(0, P[4], b"x" * 10, flags=F.CHUNK | F.REQUEST, total=30,
                                    offset=20)),
        "ok-ack-cumulative": batch(F.encode_ack(6)),
        "ok-ack-ranges": batch(F.encode_ack(10, [(12, 15), (20, 21)], 1500)),
        "ok-ack-32-ranges": batch(F.encode_ack(0, [(2 * i + 1, 2 * i + 2) for i in range(32)])),
        "ok-ack-top-of-seq-space": batch(F.encode_ack(2**62 - 3, [(2**62 - 2, 2**62 - 1)])),
        "ok-close": batch(F.encode_close(0, "bye")),
        "ok-close-invalid-utf8": batch(raw_close(99, b"\xff\xfe bad \xc3")),
        "ok-close-256-bytes": batch(raw_close(1, "é".encode() * 128)),
        "ok-ack-data-close": batch(F.encode_ack(3), d(0, P[0], app("x")),
                                   F.encode_close(1, "protocol error: test")),
        "ok-nonminimal-varints": batch(raw_data(5, P[5], b"abc", sizes={"seq": 8, "length": 4}),
                                       bytes((F.ACK,)) + varint(1, 8) + varint(0, 2)
                                       + varint(1, 4) + varint(1, 8) + varint(1, 2)),
        "ok-max-varints": batch(raw_data(2**62 - 1, P[6], b"z",
                                         flags=F.CHUNK | F.RESPONSE | F.REQUEST,
                                         reply_to=b"\xff" * 16, total=2**62 - 1,
                                         offset=2**62 - 2)),
        "ok-4096-frames": b"\x01" + F.encode_ack(0) * 4096,
        "bad-empty": b"",
        "bad-version-only": b"\x01",
        "bad-version-2": b"\x02" + F.encode_ack(0),
        "bad-unknown-frame-type": b"\x01\x04\x00",
        "bad-unknown-flags": batch(raw_data(0, P[0], b"", flags=0x08)),
        "bad-missing-flags": b"\x01\x01",
        "bad-truncated-id": batch(d(0, P[0], b"abc"))[:12],
        "bad-truncated-reply-to": batch(d(0, P[0], b"", flags=F.RESPONSE, reply_to=R[1]))[:30],
        "bad-varint-needs-more": b"\x01\x01\x00\xc0\x00",
        "bad-payload-past-end": batch(raw_data(0, P[0], b"ab", length=3)),
        "bad-chunk-total-zero": batch(raw_data(0, P[0], b"a", flags=F.CHUNK, total=0)),
        "bad-chunk-empty": batch(raw_data(0, P[0], b"", flags=F.CHUNK, total=5)),
        "bad-chunk-overrun": batch(raw_data(0, P[0], b"abc", flags=F.CHUNK, total=4, offset=2)),
        "bad-chunk-offset-at-total": batch(raw_data(0, P[0], b"a", flags=F.CHUNK, total=4,
                                                    offset=4)),
        "bad-ack-33-ranges": batch(raw_ack(0, [(1, 1)] * 33)),
        "bad-ack-zero-gap": batch(raw_ack(5, [(0, 1)])),
        "bad-ack-zero-length": batch(raw_ack(5, [(1, 0)])),
        "bad-ack-beyond-seq-space": batch(raw_ack(2**62 - 2, [(1, 1)])),
        "bad-ack-truncated-ranges": batch(raw_ack(0, [(1, 1), (1, 1)]))[:-1],
        "bad-close-reason-257": batch(raw_close(0, b"r" * 257)),
        "bad-close-truncated": batch(raw_close(0, b"reason", length=7)),
        "bad-4097-frames": b"\x01" + F.encode_ack(0) * 4097,
        "bad-trailing-byte": batch(F.encode_ack(0)) + b"\x02",
    }

    engine = {
        "ok-data-plain": batch(d(0, P[0], app("m", 1))),
        "ok-data-request": batch(d(0, P[1], app("call", 1), flags=F.REQUEST)),
        "ok-data-response": batch(d(0, P[1], app(42), flags=F.RESPONSE, reply_to=R[1])),
        "ok-data-chained-reply": batch(d(0, P[3], app("more?"), flags=F.RESPONSE | F.REQUEST,
                                         reply_to=R[3])),
        "ok-response-unknown-request": batch(d(0, P[2], app(1), flags=F.RESPONSE,
                                               reply_to=P[7])),
        "ok-data-with-attachments": batch(d(0, P[0], app("att", b"\x00\x01", {"k": b"v"}))),
        "ok-chunked-message": batch(*chunks),
        "ok-chunked-reversed": batch(*reversed(chunks)),
        "ok-chunked-request": batch(*(d(i, P[4], BLOB[o:o + 64], flags=F.CHUNK | F.REQUEST,
                                        total=150, offset=o)
                                      for i, o in enumerate((0, 64, 128)))),
        "ok-chunks-held": batch(*(d(i + 1, P[2], BLOB[o:o + 64], flags=F.CHUNK, total=150,
                                    offset=o) for i, o in enumerate((0, 64, 128)))),
        "ok-out-of-order": batch(d(3, P[3], app("d")), d(1, P[1], app("b")),
                                 d(2, P[2], app("c")), d(0, P[0], app("a"))),
        "ok-held-only": batch(d(5, P[5], app("f")), d(7, P[7], app("h"))),
        "ok-window-edge": batch(d(127, P[0], app("edge"))),
        "ok-duplicate-seq": batch(d(0, P[0], app("a")), d(0, P[0], app("a"))),
        "ok-duplicate-id": batch(d(0, P[0], app("a")), d(1, P[0], app("a"))),
        "ok-retried-request-id": batch(d(0, P[1], app("q"), flags=F.REQUEST),
                                       d(1, P[1], app("q"), flags=F.REQUEST)),
        "ok-requests-beyond-pending-limit": batch(*(d(i, P[i], app("q", i), flags=F.REQUEST)
                                                    for i in range(6))),
        "ok-reorder-memory-full": batch(*(d(i + 1, mid("hold", i), b"h" * 200)
                                          for i in range(4))),
        "ok-reassemblies-full": batch(*(d(10 * i + 1, mid("reasm", i), b"r" * 64,
                                          flags=F.CHUNK, total=300, offset=0)
                                        for i in range(4))),
        "ok-ack-cumulative": batch(F.encode_ack(6)),
        "ok-ack-all-but-one": batch(F.encode_ack(5)),
        "ok-ack-ranges": batch(F.encode_ack(1, [(2, 3), (4, 6)], 250)),
        "ok-ack-zero": batch(F.encode_ack(0)),
        "ok-ack-stale": batch(F.encode_ack(4), F.encode_ack(2, [(3, 4)])),
        "ok-ack-then-data": batch(F.encode_ack(2), d(0, P[0], app("x"))),
        "ok-close": batch(F.encode_close(0, "bye")),
        "ok-ack-then-close": batch(F.encode_ack(6), F.encode_close(1, "protocol error: x")),
        "ok-close-then-garbage": batch(F.encode_close(7, "done")) + b"\xff\xff",
        "ok-close-unknown-code": batch(raw_close(2**62 - 1, b"\xff")),
        "ok-nonminimal-varints": batch(raw_data(0, P[0], app("n"), sizes={"seq": 8, "length": 2})),
        "ok-empty-payload": batch(d(0, P[0], b"")),
        "bad-empty": b"",
        "bad-version-2": b"\x02" + F.encode_ack(0),
        "bad-batch-too-big": batch(d(0, P[0], b"x" * 4096)),
        "bad-unknown-frame-type": b"\x01\x09",
        "bad-ack-never-sent": batch(F.encode_ack(100)),
        "bad-ack-range-never-sent": batch(F.encode_ack(1, [(3, 9)])),
        "bad-ack-9-ranges": batch(F.encode_ack(0, [(2 * i + 1, 2 * i + 2) for i in range(9)])),
        "bad-seq-beyond-window": batch(d(128, P[0], app("far"))),
        "bad-message-too-big": batch(d(0, P[0], b"m" * 1025)),
        "bad-chunk-total-too-big": batch(d(0, P[0], b"c" * 64, flags=F.CHUNK, total=1025)),
        "bad-chunk-total-changes": batch(chunks[0], d(1, P[2], BLOB[64:128], flags=F.CHUNK,
                                                      total=151, offset=64)),
        "bad-chunk-starts-mid-message": batch(d(0, P[2], BLOB[64:128], flags=F.CHUNK,
                                                total=150, offset=64)),
        "bad-chunks-interleaved": batch(chunks[0], d(1, P[3], b"o" * 10, flags=F.CHUNK,
                                                     total=10)),
        "bad-message-interrupts-chunks": batch(chunks[0], d(1, P[3], app("x"))),
        "bad-chunk-gap": batch(chunks[0], d(1, P[2], BLOB[128:], flags=F.CHUNK, total=150,
                                            offset=128)),
        "bad-frame-after-valid-data": batch(d(0, P[0], app("ok")), b"\x07"),
        # Found by fuzzing (see the regression tests): two complete copies of one chunked message
        # under two sequence numbers, held behind a gap, made finish() raise LocalProtocolError
        # out of receive(), then (edc730e) closed the session; it is a sender's retry once the
        # first copy was acknowledged, so now the second copy is refused and resent later.
        "ok-retried-chunk-held-behind-gap": batch(
            d(1, P[2], b"a" * 10, flags=F.CHUNK, total=10),
            d(2, P[2], b"a" * 10, flags=F.CHUNK, total=10),
            d(0, P[0], app("first"))),
    }
    for i, b in enumerate(peer_batches):
        engine[f"ok-peer-session-{i}"] = b
        frames[f"ok-peer-session-{i}"] = b

    resume = {
        "ok-cumulative-2": F.encode_ack(2),
        "ok-cumulative-2-range": F.encode_ack(2, [(4, 5)]),
        "ok-all-received": F.encode_ack(6),
        "ok-cumulative-3": F.encode_ack(3),
        "ok-nonminimal": bytes((F.ACK,)) + varint(2, 8) + varint(0, 4) + varint(0, 2),
        "ok-with-delay": F.encode_ack(2, [(3, 4), (5, 6)], 123456),
        "bad-empty": b"",
        "bad-data-frame": F.encode_data(0, P[0], b""),
        "bad-close-frame": F.encode_close(0, "x"),
        "bad-two-acks": F.encode_ack(2) + F.encode_ack(2),
        "bad-trailing-byte": F.encode_ack(2) + b"\x00",
        "bad-truncated": F.encode_ack(2, [(4, 5)])[:-1],
        "bad-with-version-byte": b"\x01" + F.encode_ack(2),
        "bad-peer-lost-frames": F.encode_ack(1),
        "bad-cumulative-never-sent": F.encode_ack(7),
        "bad-range-never-sent": F.encode_ack(2, [(4, 8)]),
        "bad-9-ranges": F.encode_ack(2, [(2 * i + 3, 2 * i + 4) for i in range(9)]),
        "bad-zero-gap": raw_ack(2, [(0, 1)]),
    }

    restore = _snapshot_seeds()

    payload = {
        "ok-empty-list": app(),
        "ok-event": app("event"),
        "ok-all-json-types": app("e", 1, -2.5, "s", None, True, False, {"a": [1, {"b": []}]}),
        "ok-unicode": app("é", "\u2603", "\U0001f600", "\x00"),
        "ok-attachments": app("bin", b"", b"\x00" * 10, [b"n", {"k": b"v"}]),
        "ok-many-attachments": app(*[bytes([i]) * i for i in range(40)]),
        "ok-placeholder-lookalike": app({"_placeholder": True, "num": 0, "x": 1}),
        "ok-json-placeholder-without-binary": b"\x00" + json.dumps(
            [{"_placeholder": False, "num": 0}]).encode(),
        "ok-nan-and-infinity": b"\x00[NaN,Infinity,-Infinity,1e999]",
        "ok-100-digit-int": b"\x00[" + b"9" * 100 + b"]",
        "ok-nonminimal-count": b"\x81\x00" + leb128(1) + b"b" + b'[{"_placeholder":true,"num":0}]',
        "bad-empty": b"",
        "bad-no-json": b"\x00",
        "bad-not-a-list": b'\x00{"a":1}',
        "bad-truncated-json": b'\x00["a"',
        "bad-invalid-utf8": b'\x00["\xff"]',
        "bad-placeholder-out-of-range": leb128(1) + leb128(1) + b"x"
        + b'[{"_placeholder":true,"num":1}]',
        "bad-placeholder-not-int": leb128(1) + leb128(1) + b"x"
        + b'[{"_placeholder":true,"num":true}]',
        "bad-attachment-past-end": leb128(1) + leb128(10) + b"xyz" + b"[]",
        "bad-count-past-end": leb128(3) + leb128(1) + b"x" + b"[]",
        "bad-oversized-varint": b"\x80" * 10 + b"\x01[]",
        "bad-101-digit-int": b"\x00[" + b"9" * 101 + b"]",
        "bad-deep-nesting": b"\x00" + b"[" * 5000 + b"]" * 5000,
        "bad-attachments-then-not-a-list": leb128(1) + leb128(1) + b"x" + b'"s"',
    }

    some_batch = batch(d(0, P[0], app("m")))
    carrier = {
        "ok-root": b"\x00" + some_batch,
        "ok-namespace": b"\x05/chat" + some_batch,
        "ok-root-empty-batch": b"\x00",
        "ok-unicode-namespace": bytes((len("/ñ☃".encode()),)) + "/ñ☃".encode() + some_batch,
        "ok-127-byte-namespace": b"\x7f/" + b"n" * 126 + some_batch,
        "ok-explicit-slash": b"\x01/" + some_batch,
        "bad-empty": b"",
        "bad-length-128": b"\x80" + b"/" * 128,
        "bad-length-past-end": b"\x09/short",
        "bad-invalid-utf8": b"\x02/\xff" + some_batch,
    }
    return {"frames": frames, "engine": engine, "resume": resume, "restore": restore,
            "payload": payload, "carrier": carrier}


def _set_varint(data: bytes, field: tuple, value: int, keep_size: bool = True) -> bytes:
    pos, size, _ = field
    try:
        enc = varint(value, size) if keep_size else varint(value)
    except ValueError:
        enc = varint(value)
    return data[:pos] + enc + data[pos + size:]


def _named_field(data: bytes, name: str, walker=None) -> tuple:
    for field in (walker or snapshot_fields)(data):
        if field[2] == name:
            return field
    raise KeyError(name)


def _snapshot_seeds() -> dict[str, bytes]:
    P, R = PEER_IDS, REF_IDS
    d = F.encode_data
    out: dict[str, bytes] = {}
    out["ok-fresh"] = Engine(SMALL, now=0.0, id_prefix=REF_PREFIX).snapshot(0.0)
    queued = Engine(SMALL, now=0.0, id_prefix=REF_PREFIX)
    for i in range(5):
        queued.send(app("q", i), 0.0, request=i % 2 == 1)
    queued.send(app("big", BLOB), 0.0)
    out["ok-queued-not-sent"] = queued.snapshot(1.0)
    e, _ = ref_engine()
    out["ok-in-flight"] = e.snapshot(1.0)
    e.receive(batch(F.encode_ack(1, [(3, 4)], 100)), 1.0)
    out["ok-selectively-acked"] = e.snapshot(2.0)
    # Receive side: a chunk stream in progress, held frames (plain and chunks), requests waiting
    # for an answer, cached responses.
    e, _ = ref_engine()
    e.receive(batch(d(0, P[0], BLOB[:64], flags=F.CHUNK, total=150)), 1.0)
    out["ok-chunk-stream-in-progress"] = e.snapshot(2.0)
    e.receive(batch(d(3, P[3], app("held")), d(5, P[5], b"c" * 20, flags=F.CHUNK, total=40,
                                                 offset=20)), 1.5)
    out["ok-held-frames"] = e.snapshot(2.0)
    e, _ = ref_engine()
    e.receive(batch(d(0, P[0], app("q"), flags=F.REQUEST), d(1, P[1], app("r"), flags=F.REQUEST),
                    d(2, P[2], app(1), flags=F.RESPONSE | F.REQUEST, reply_to=R[1])), 1.0)
    for ev in e.events():
        if isinstance(ev, MessageReceived) and ev.msg_id == P[0]:
            e.reply(ev.msg_id, app("cached answer"), 1.0)
    e.data_to_send(1.0)
    out["ok-awaiting-and-cached"] = e.snapshot(2.0)
    peer, batches = peer_session()
    out["ok-peer-after-session"] = peer.snapshot(1.0)
    ref, _ = ref_engine()
    for b in batches:
        ref.receive(b, 0.1)
    out["ok-ref-after-session"] = ref.snapshot(1.0)

    base = out["ok-awaiting-and-cached"]
    held = out["ok-held-frames"]
    flight = out["ok-in-flight"]
    out["bad-magic"] = b"relio-sessioN\0" + flight[14:]
    out["bad-version-2"] = _set_varint(flight, _named_field(flight, "version"), 2)
    out["bad-truncated"] = flight[:len(flight) // 2]
    out["bad-trailing-byte"] = flight + b"\x00"
    out["bad-empty"] = b""
    out["bad-rto-nan"] = _set_f64(flight, "f64:rto", float("nan"))
    out["bad-rto-below-min"] = _set_f64(flight, "f64:rto", 0.0)
    out["bad-srtt-negative"] = _set_f64(flight, "f64:srtt", -1.0)
    out["bad-age-infinite"] = _set_f64(flight, "f64:age", float("inf"))
    out["bad-too-many-messages"] = _set_varint(flight, _named_field(flight, "count:messages"), 33)
    out["bad-message-flags"] = _set_varint(flight, _named_field(flight, "message_flags"), 8)
    out["bad-framed-beyond-size"] = _set_varint(flight, _named_field(flight, "framed"), 1000)
    out["bad-inflight-beyond-window"] = _set_varint(flight, _named_field(flight, "snd_next"), 65)
    out["bad-message-index"] = _set_varint(flight, _named_field(flight, "message_index"), 9)
    out["bad-transmissions-zero"] = _set_varint(flight, _named_field(flight, "transmissions"), 0)
    out["bad-frame-length-beyond-chunk"] = _set_varint(
        flight, _named_field(flight, "frame_length"), 65)
    out["bad-held-outside-window"] = _set_varint(held, _named_field(held, "held_seq"), 1000)
    out["bad-held-flags"] = _set_varint(held, _named_field(held, "held_flags"), 0x10)
    out["bad-held-at-base"] = _set_varint(held, _named_field(held, "held_seq"), 1)
    out["bad-ids-beyond-capacity"] = _set_varint(base, _named_field(base, "count:ids"), 65)
    out["bad-cache-beyond-capacity"] = _set_varint(base, _named_field(base, "count:cache"), 5)
    out["bad-cached-response-too-short"] = _set_varint(
        base, _named_field(base, "blob_length:cached"), 3)
    stream = out["ok-chunk-stream-in-progress"]
    out["bad-chunk-stream-total-too-big"] = _set_varint(
        stream, _named_field(stream, "chunk_stream_total"), 2000)
    out["bad-chunk-stream-complete"] = _set_varint(
        stream, _named_field(stream, "chunk_stream_total"), 64)
    # A message framed (all of it handed to frames) yet neither in flight nor queued.
    out["bad-message-orphaned"] = _set_varint(flight, _named_field(flight, "count:inflight"), 0)
    # Found by fuzzing (see the regression tests): restore accepts them, and the restored engine
    # then sends frames that do not carry its messages.
    pos, size, _ = _named_field(flight, "count:queue")
    out["regress-queued-message-fully-framed"] = (flight[:pos] + varint(1) + varint(2)
                                                  + flight[pos + size:])
    cut = _set_varint(flight, _named_field(flight, "frame_length"), 8)
    out["regress-in-flight-frame-cuts-unchunked-message"] = _set_varint(
        cut, _named_field(cut, "chunk_offset"), 4)
    return out


def _set_f64(data: bytes, name: str, value: float) -> bytes:
    pos, size, _ = _named_field(data, name)
    return data[:pos] + struct.pack(">d", value) + data[pos + size:]


def write_corpus(root: pathlib.Path = CORPUS) -> dict:
    """(Re)write the corpus files and MANIFEST.json from :func:`build_corpus` and the current
    behaviour (``regress-*`` files are recorded as the error they must raise)."""
    manifest: dict = {}
    for target, entries in build_corpus().items():
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.bin"):
            old.unlink()
        for name, data in sorted(entries.items()):
            (folder / f"{name}.bin").write_bytes(data)
            key = f"{target}/{name}.bin"
            if name.startswith("regress-"):
                manifest[key] = {"outcome": "error", "reason": None}
            else:
                manifest[key] = run_target(target, data)
    (root / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def load_corpus(target: str, weight_valid: int = 1) -> list[bytes]:
    """The corpus files of ``target``; valid (``ok-``) entries ``weight_valid`` times, so that
    mutations start from a valid input more often (deep paths) than from an invalid one."""
    out = []
    for path in sorted((CORPUS / target).glob("*.bin")):
        out += [path.read_bytes()] * (weight_valid if path.name.startswith("ok-") else 1)
    return out


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


SEEDS = {t: load_corpus(t) for t in TARGETS}
MUTATION_SEEDS = {t: load_corpus(t, weight_valid=3) for t in TARGETS}
BATCH_SEEDS = MUTATION_SEEDS["frames"] + MUTATION_SEEDS["engine"]
ENGINE_SEEDS = MUTATION_SEEDS["engine"] + [b for b in MUTATION_SEEDS["frames"]
                                           if len(b) <= SMALL.max_batch_size]


# =================================================================================================
# Mutations (Hypothesis strategies over corpus entries)

INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x3F, 0x40, 0x7F, 0x80,
                     0xBF, 0xC0, 0xFF)
LENGTH_FIELDS = {"length", "total", "offset", "range_count", "gap", "range_length",
                 "reason_length", "cumulative", "seq", "attachment_length", "count",
                 # snapshot fields that must agree with each other
                 "framed", "chunk_offset", "frame_length", "message_index", "queue_index",
                 "inflight_seq", "held_seq", "held_total", "held_offset", "snd_next",
                 "send_base", "receive_base", "chunk_stream_total", "transmissions"}
# Snapshot lists that a "grow" mutation lengthens by one well-formed element.
GROWABLE = {"count:queue": ("varint",), "count:ids": ("id",), "count:awaiting": ("id",),
            "count:inflight": ("varint",) * 5}


def _f64_values():
    return st.sampled_from([0.0, -0.0, -1.0, 1e-300, 0.2, 1.0, 10.0, 1e300, float("inf"),
                            float("-inf"), float("nan")])


@st.composite
def mutated(draw, seeds, walker=None, pool=None, max_ops=4, protect=None):
    """A corpus entry with 0..max_ops mutations; ``walker(data)`` lists its fields. Truncation,
    deletion, insertion and splicing happen at or after ``protect`` (1 for batches, 14 for
    snapshots; bit flips and byte changes still reach the header)."""
    if protect is None:
        protect = 14 if walker is snapshot_fields else 1 if walker is batch_fields else 0
    data = bytes(draw(st.sampled_from(seeds)))
    pool = pool or seeds
    ops = ["flip", "byte", "truncate", "delete", "insert", "duplicate", "splice", "append"]
    if walker is not None:
        ops += ["field", "field", "nudge", "nudge"]
    if walker is snapshot_fields:       # a snapshot is mostly broken by byte edits: go structural
        ops = ["flip", "byte", "truncate", "splice"] + ["field", "nudge", "nudge", "grow"] * 3
    for _ in range(draw(st.integers(min_value=0, max_value=max_ops))):
        op = draw(st.sampled_from(ops))
        n = len(data)
        lo = min(protect, n)      # destructive edits mostly keep the header (magic, version)
        first = draw(st.sampled_from((lo, lo, lo, 0))) if n > lo else 0
        if op == "flip" and n:
            i = draw(st.integers(first, n - 1))
            data = data[:i] + bytes((data[i] ^ (1 << draw(st.integers(0, 7))),)) + data[i + 1:]
        elif op == "byte" and n:
            i = draw(st.integers(first, n - 1))
            data = data[:i] + bytes((draw(st.sampled_from(INTERESTING_BYTES)),)) + data[i + 1:]
        elif op == "truncate":
            data = data[:draw(st.integers(lo, n))]
        elif op == "delete" and n > lo:
            i = draw(st.integers(lo, n - 1))
            data = data[:i] + data[i + draw(st.integers(1, 16)):]
        elif op == "insert":
            i = draw(st.integers(lo, n))
            data = data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]
        elif op == "duplicate" and n > lo:
            i = draw(st.integers(lo, n - 1))
            j = draw(st.integers(i + 1, n))
            data = data[:j] + data[i:j] + data[j:]
        elif op == "splice":
            other = draw(st.sampled_from(pool))
            data = data[:draw(st.integers(lo, n))] + other[draw(st.integers(
                min(protect, len(other)), len(other))):]
        elif op == "append":
            other = draw(st.sampled_from(pool))
            data = data + other[1:]          # batches: the other's frames after ours
        elif op == "grow":
            fields = [f for f in walker(data) if f[2] in GROWABLE]
            if not fields:
                continue
            pos, size, name = draw(st.sampled_from(fields))
            count = int.from_bytes(data[pos:pos + size], "big") & ((1 << (8 * size - 2)) - 1)
            element = b"".join(varint(draw(st.integers(0, 8))) if part == "varint"
                               else draw(st.sampled_from(REF_IDS + PEER_IDS[:2]))
                               for part in GROWABLE[name])
            grown = varint(min(count + 1, 2**62 - 1))
            data = data[:pos] + grown + element + data[pos + size:]
        elif op in ("field", "nudge"):
            fields = walker(data)
            if not fields:
                continue
            if op == "nudge":
                fields = [f for f in fields if f[2].split(":")[0] in LENGTH_FIELDS
                          or f[2].startswith(("count:", "blob_length:"))] or fields
            pos, size, name = draw(st.sampled_from(fields))
            if name.startswith("f64:"):
                data = data[:pos] + struct.pack(">d", draw(_f64_values())) + data[pos + 8:]
                continue
            if name in ("type", "flags"):
                data = data[:pos] + bytes((draw(st.integers(0, 255)),)) + data[pos + 1:]
                continue
            if walker is payload_fields:
                value = draw(st.sampled_from(BOUNDARY)) if op == "field" else max(
                    0, _leb_value(data, pos) + draw(st.sampled_from((-1, 1))))
                data = data[:pos] + leb128(value) + data[pos + size:]
                continue
            current = int.from_bytes(data[pos:pos + size], "big") & ((1 << (8 * size - 2)) - 1)
            if op == "field":
                value = draw(st.sampled_from(BOUNDARY))
            else:
                value = min(max(0, current + draw(st.sampled_from((-1, 1, -64, 64)))), 2**62 - 1)
            data = _set_varint(data, (pos, size, name), value, keep_size=draw(st.booleans()))
    return data


def _leb_value(data: bytes, pos: int) -> int:
    value = shift = 0
    while pos < len(data):
        value |= (data[pos] & 0x7F) << shift
        if not data[pos] & 0x80:
            break
        pos += 1
        shift += 7
    return value


# Structured but hostile frames, built with relio.engine._frames.encode_* (and raw builders for what the
# encoders refuse), with ids, sequence numbers and sizes around the interesting values.
ids = st.sampled_from(PEER_IDS[:4] + REF_IDS + [b"\0" * 16, b"\xff" * 16])
near_seqs = st.one_of(st.integers(0, 12), st.sampled_from([63, 64, 126, 127, 128, 129, 2**62 - 1]),
                      st.integers(0, 2**62 - 1))
sizes = st.one_of(st.integers(0, 300), st.sampled_from(BOUNDARY))
small_payloads = st.one_of(st.sampled_from([b"", app("e"), app("e", b"bin"), app(1),
                                            b"\x00{}", b"\x01\x05"]),
                           st.binary(max_size=70))


@st.composite
def hostile_frame(draw):
    kind = draw(st.sampled_from(["data", "data", "data", "chunk", "chunk", "ack", "close",
                                 "raw_data", "raw_ack", "junk"]))
    if kind in ("data", "chunk"):
        flags = draw(st.sampled_from([0, F.REQUEST, F.RESPONSE, F.RESPONSE | F.REQUEST]))
        payload = draw(small_payloads)
        total = offset = 0
        if kind == "chunk":
            payload = payload or b"c"
            flags |= F.CHUNK
            total = draw(st.one_of(st.sampled_from([len(payload), 64, 128, 150, 1024, 1025]),
                                   st.integers(len(payload), 4096)))
            total = max(total, len(payload))
            offset = draw(st.one_of(st.sampled_from([0, 64, 128, total - len(payload)]),
                                    st.integers(0, total - len(payload))))
            offset = min(max(offset, 0), total - len(payload))
        reply_to = draw(ids) if flags & F.RESPONSE else None
        return F.encode_data(draw(near_seqs), draw(ids), payload, flags=flags, reply_to=reply_to,
                             total=total, offset=offset)
    if kind == "ack":
        cumulative = draw(st.one_of(st.integers(0, 8), st.sampled_from(BOUNDARY[:-1])))
        ranges, end = [], cumulative
        for _ in range(draw(st.integers(0, 10))):
            start = end + draw(st.integers(1, 4))
            end = start + draw(st.integers(1, 4))
            ranges.append((start, end))
        return F.encode_ack(cumulative, ranges, draw(st.sampled_from([0, 1000, 2**62 - 1])))
    if kind == "close":
        return F.encode_close(draw(st.sampled_from([0, 1, 2, 3, 99, 2**62 - 1])),
                              draw(st.text(max_size=300)))
    if kind == "raw_data":
        flags = draw(st.integers(0, 255))
        return raw_data(draw(near_seqs), draw(ids), draw(small_payloads), flags=flags,
                        reply_to=draw(ids), total=draw(sizes), offset=draw(sizes),
                        length=draw(st.one_of(st.none(), sizes)))
    if kind == "raw_ack":
        pairs = draw(st.lists(st.tuples(st.sampled_from(BOUNDARY), st.sampled_from(BOUNDARY)),
                              max_size=10))
        return raw_ack(draw(st.sampled_from(BOUNDARY)), pairs, draw(st.sampled_from(BOUNDARY)))
    return draw(st.binary(min_size=1, max_size=12))


hostile_batches = st.lists(hostile_frame(), min_size=1, max_size=8).map(
    lambda fs: F.encode_batch(fs))


# =================================================================================================
# Contract checks

def check_decoder(data: bytes, max_batch_size=131072, max_frames=4096, max_ranges=32) -> None:
    """decode_batch/check_batch_header raise only RemoteProtocolError and agree with the
    reference decoder; what they accept re-encodes to the same frames."""
    try:
        F.check_batch_header(data, max_batch_size)
        header_ok = True
    except RemoteProtocolError as exc:
        assert exc.reason
        header_ok = False
    try:
        got = [as_tuple(f) for f in F.decode_batch(data, max_batch_size=max_batch_size,
                                                    max_frames=max_frames,
                                                    max_ranges=max_ranges)]
    except RemoteProtocolError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        got = None
    try:
        want = ref_decode_batch(data, max_batch_size, max_frames, max_ranges)
    except Reject:
        want = None
    assert got == want, f"decode_batch {got!r} vs reference {want!r} for {data.hex()}"
    if got is not None:
        assert header_ok, "decode_batch accepted a batch check_batch_header rejects"
        again = F.decode_batch(F.encode_batch([encode_tuple(f) for f in got]),
                               max_batch_size=1 << 30, max_frames=max_frames,
                               max_ranges=max_ranges)
        for a, b in zip(got, (as_tuple(f) for f in again)):
            if a[0] == "CLOSE" and "\ufffd" in a[2]:
                continue      # the replacement character re-encodes longer and may be cut
            assert a == b
        assert len(again) == len(got)


def check_bounds(e: Engine) -> None:
    cfg = e.config
    s = e.stats
    assert 0 <= s["held_bytes"] <= cfg.max_reorder_bytes
    assert 0 <= s["held_frames"] <= cfg.receive_window
    assert 0 <= s["reassembly_bytes"] <= cfg.max_reassembly_bytes + cfg.max_message_size
    assert 0 <= s["outbox_messages"] <= cfg.max_outbox_messages + cfg.response_cache_entries
    assert 0 <= s["in_flight_frames"] <= cfg.max_inflight_messages
    assert 0 <= s["cached_responses"] <= cfg.response_cache_entries
    if e.closed:
        assert s["outbox_messages"] == s["in_flight_frames"] == s["held_frames"] == 0
        assert s["reassembly_bytes"] == 0


def check_sent(e: Engine, batches: list[bytes]) -> list:
    """What the engine sends must be valid under its (and so the peer's) limits; returns the
    frames."""
    cfg = e.config
    out = []
    for b in batches:
        assert isinstance(b, bytes)
        try:
            frames = F.decode_batch(b, max_batch_size=cfg.max_batch_size,
                                    max_frames=cfg.max_frames_per_batch,
                                    max_ranges=cfg.max_ack_ranges)
        except RemoteProtocolError as exc:
            raise AssertionError(f"engine sent an invalid batch ({exc.reason}): {b.hex()}")
        assert frames
        out += frames
    return out


def check_frames_carry_messages(frames: list, messages: dict) -> None:
    """Every DATA frame of a known message carries exactly that message's bytes (the whole of
    it, or with CHUNK its total and the bytes at its offset), with its kind and reply-to."""
    for f in frames:
        if not isinstance(f, F.DataFrame) or f.msg_id not in messages:
            continue
        flags, reply_to, payload = messages[f.msg_id]
        if f.flags & F.CHUNK:
            ok = (f.total == len(payload)
                  and f.payload == payload[f.offset:f.offset + len(f.payload)])
        else:
            ok = f.payload == payload
        assert ok, (f"engine sent {f!r} for message {f.msg_id.hex()} of {len(payload)} bytes: "
                    "its bytes do not match the message")
        assert (f.flags & 3) == (flags & 3) and f.reply_to == reply_to, f


def check_closed_after_error(e: Engine, exc: RemoteProtocolError, now: float) -> None:
    """An engine whose input raised: closed with the reason, pending work expired, usable."""
    assert isinstance(exc.reason, str) and exc.reason
    assert e.closed
    assert e.close_reason == f"protocol error: {exc.reason}"
    events = e.events()
    assert events and isinstance(events[-1], SessionClosed)
    assert events[-1].reason == e.close_reason and not events[-1].by_peer
    assert not any(isinstance(ev, SessionClosed) for ev in events[:-1])
    e.close("again", now)                       # no-op, no error
    assert e.close_reason == f"protocol error: {exc.reason}"
    assert isinstance(e.stats, dict) and e.outbox_messages == 0
    assert e.receive(batch(F.encode_ack(0)), now) is None      # ignored once closed
    sent = e.data_to_send(now)
    check_sent(e, sent)
    if sent:                                   # the CLOSE tells the peer, once
        last = F.decode_batch(sent[-1], max_ranges=e.config.max_ack_ranges)[-1]
        assert isinstance(last, F.CloseFrame) and last.code == 1
    assert e.data_to_send(now) == []
    assert e.get_timer() is None
    e.handle_timer(now + 100)
    check_bounds(e)
    assert e.events() == []


def service(e: Engine, now: float, decode_payloads: bool = True,
            validate_sent: bool = True) -> None:
    """What an application does between batches: take the events (decoding payloads, which may
    only raise RemoteProtocolError), answer some requests, leave others pending, run timers,
    send (``validate_sent``: what is sent must decode)."""
    for ev in e.events():
        if isinstance(ev, (MessageReceived, ResponseReceived)):
            if decode_payloads:
                try:
                    items = payload_codec.decode(ev.payload)
                    assert isinstance(items, list)
                except RemoteProtocolError as exc:
                    assert exc.reason
            if ev.request and not e.closed:
                policy = ev.msg_id[-1] % 3
                try:
                    if policy == 0:
                        e.reply(ev.msg_id, app("answer"), now, request=bool(ev.msg_id[0] & 1))
                    elif policy == 1:
                        e.decline(ev.msg_id)
                except QueueFull:
                    e.decline(ev.msg_id)
    e.handle_timer(now)
    sent = e.data_to_send(now)
    assert all(isinstance(b, bytes) for b in sent)
    if validate_sent:
        check_sent(e, sent)
    check_bounds(e)


def feed(e: Engine, data: bytes, now: float, validate_sent: bool = True) -> bool:
    """Give ``data`` to ``e.receive``; True if accepted. Checks the contract either way."""
    was_closed = e.closed
    try:
        e.receive(data, now)
    except RemoteProtocolError as exc:
        assert not was_closed, "a closed engine raised"
        check_closed_after_error(e, exc, now)
        return False
    if not was_closed and not (e.closed and e.close_reason.startswith("closed by peer: ")):
        cfg = e.config
        F.decode_batch(data, max_batch_size=cfg.max_batch_size,
                       max_frames=cfg.max_frames_per_batch, max_ranges=cfg.max_ack_ranges)
    service(e, now, validate_sent=validate_sent)
    return True


# =================================================================================================
# The corpus is what it was recorded as

CORPUS_FILES = sorted(_manifest())


def test_corpus_is_complete_and_consistent():
    manifest = _manifest()
    on_disk = {f"{p.parent.name}/{p.name}" for p in CORPUS.glob("*/*.bin")}
    assert on_disk == set(manifest), "corpus files and MANIFEST.json disagree"
    built = build_corpus()
    for target, entries in built.items():
        assert len(SEEDS[target]) >= 5
        for name in entries:
            assert f"{target}/{name}.bin" in manifest, f"{target}/{name} not checked in"
        assert any(n.startswith("ok-") for n in entries)
        assert any(n.startswith("bad-") for n in entries)
    # every frame type, chunks, acks with ranges, attachments, snapshots with every section
    kinds = {f[0] for b in SEEDS["frames"] for f in _try_decode(b)}
    assert kinds == {"DATA", "ACK", "CLOSE"}


def _try_decode(b: bytes) -> list:
    try:
        return ref_decode_batch(b)
    except Reject:
        return []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("key", CORPUS_FILES)
def test_corpus_decodes_as_recorded(key):
    target = key.split("/")[0]
    recorded = _manifest()[key]
    data = (CORPUS / key).read_bytes()
    got = run_target(target, data)     # anything but RemoteProtocolError propagates
    assert got["outcome"] == recorded["outcome"], (key, got)
    if recorded["outcome"] == "ok":
        assert json.loads(json.dumps(got["summary"])) == recorded["summary"]
    elif recorded["reason"] is not None:
        assert got["reason"] == recorded["reason"]
    assert (key.split("/")[1].startswith("ok-")) == (recorded["outcome"] == "ok")


# =================================================================================================
# Fuzzing: frame decoder

limits = st.tuples(st.sampled_from([2, 64, 4096, 131072]), st.sampled_from([1, 2, 3, 4096]),
                   st.sampled_from([0, 1, 8, 32]))


@pytest.mark.timeout(120)
@fuzz_settings(800)
@given(mutated(BATCH_SEEDS, walker=batch_fields), limits)
def test_fuzz_decode_batch_mutated_corpus(data, lim):
    check_decoder(data)
    check_decoder(data, *lim)


@pytest.mark.timeout(120)
@fuzz_settings(300)
@given(hostile_batches, limits)
def test_fuzz_decode_batch_structured(data, lim):
    check_decoder(data)
    check_decoder(data, *lim)


# =================================================================================================
# Fuzzing: the engine's receive path

@pytest.mark.timeout(120)
@fuzz_settings(500)
@given(st.lists(mutated(ENGINE_SEEDS, walker=batch_fields), min_size=1, max_size=6),
       st.sampled_from(["small", "small", "default"]))
def test_fuzz_engine_receive_mutated_corpus(batches, which):
    e, _ = ref_engine(SMALL if which == "small" else DEFAULT_CONFIG)
    for i, data in enumerate(batches):
        if not feed(e, data, 1.0 + i * 0.3):
            break


@pytest.mark.timeout(120)
@fuzz_settings(200)
@given(st.lists(st.one_of(hostile_batches, mutated(ENGINE_SEEDS, walker=batch_fields,
                                                   max_ops=1)),
                min_size=1, max_size=10))
def test_fuzz_engine_receive_structured(batches):
    e, _ = ref_engine()
    for i, data in enumerate(batches):
        if not feed(e, data, 1.0 + i * 0.3):
            break


@pytest.mark.timeout(120)
@fuzz_settings(200)
@given(st.lists(st.sampled_from(ENGINE_SEEDS), min_size=1, max_size=12), st.randoms())
def test_fuzz_engine_valid_traffic_with_hostile_injection(seeds, rnd):
    """Real traffic between two engines, with corpus batches (some invalid) injected into one
    direction: whatever happens, both engines keep the contract."""
    a = Engine(SMALL, now=0.0, id_prefix=REF_PREFIX)
    b = Engine(SMALL, now=0.0, id_prefix=PEER_PREFIX)
    now = 0.0
    for step, injected in enumerate(seeds):
        now += 0.05
        for side in (a, b):
            if not side.closed and side.has_room:
                side.send(app("n", step, b"x" * rnd.choice([0, 10, 100])), now,
                          request=rnd.random() < 0.3)
        for src, dst in ((a, b), (b, a)):
            for out in src.data_to_send(now):
                check_sent(src, [out])
                if rnd.random() < 0.1:
                    continue                          # lost
                feed(dst, out, now)
        if not b.closed:
            feed(b, injected, now)
        service(a, now)
        service(b, now)


# =================================================================================================
# Fuzzing: resume and restore

@pytest.mark.timeout(120)
@fuzz_settings(400)
@given(st.one_of(mutated(MUTATION_SEEDS["resume"], walker=lambda b: batch_fields(b, 0)),
                 hostile_frame()),
       st.lists(mutated(ENGINE_SEEDS, walker=batch_fields, max_ops=2), max_size=3))
def test_fuzz_engine_resume(state, then):
    e = resume_engine()
    was_connected = e.connected
    try:
        e.resume(state, 2.0)
    except RemoteProtocolError as exc:
        assert not was_connected
        check_closed_after_error(e, exc, 2.0)
        return
    # accepted: the state is exactly one valid ACK frame
    frame, end = ref_parse_frame(state, 0, len(state), SMALL.max_ack_ranges)
    assert frame[0] == "ACK" and end == len(state)
    assert e.connected and not e.closed
    service(e, 2.0)
    for i, data in enumerate(then):
        if not feed(e, data, 2.5 + i):
            break


restore_configs = st.sampled_from([SMALL, SMALL, SMALL, TIGHT, DEFAULT_CONFIG])
# The peer's state on resume: mostly plain cumulative points (so that whatever the snapshot holds
# in flight is retransmitted), sometimes the resume corpus or a hostile frame.
resume_states = st.one_of(st.builds(F.encode_ack, st.integers(0, 8)),
                          st.builds(lambda c, g: F.encode_ack(c, [(c + g, c + g + 1)]),
                                    st.integers(0, 6), st.integers(1, 3)),
                          st.sampled_from(SEEDS["resume"]), hostile_frame())


@pytest.mark.timeout(120)
@fuzz_settings(500)
@given(mutated(MUTATION_SEEDS["restore"], walker=snapshot_fields, max_ops=3), restore_configs,
       resume_states,
       st.lists(mutated(ENGINE_SEEDS, walker=batch_fields, max_ops=2), max_size=3))
def test_fuzz_engine_restore(snapshot, config, state, then):
    """The contract and the oracles: what the restored engine sends is valid and carries the
    snapshot's messages."""
    _restore_case(snapshot, config, state, then, oracles=True)


@pytest.mark.timeout(120)
@fuzz_settings(300)
@given(mutated(MUTATION_SEEDS["restore"], walker=snapshot_fields, max_ops=3), restore_configs,
       resume_states,
       st.lists(mutated(ENGINE_SEEDS, walker=batch_fields, max_ops=2), max_size=3))
def test_fuzz_engine_restore_contract(snapshot, config, state, then):
    """The contract alone, strict: whatever snapshot it is given, ``restore`` and then
    ``resume``/``receive`` raise only RemoteProtocolError, ``data_to_send``/``handle_timer``
    never raise, an engine that raised is closed and usable, and an accepted snapshot restores
    identically after a round trip."""
    _restore_case(snapshot, config, state, then, oracles=False)


def _restore_case(snapshot, config, state, then, oracles: bool) -> None:
    try:
        e = Engine.restore(snapshot, config, now=3.0)
    except RemoteProtocolError as exc:
        assert isinstance(exc.reason, str) and exc.reason.startswith("snapshot:"), exc.reason
        return
    assert not e.connected and not e.closed
    check_bounds(e)
    # What restore accepted is a state the engine can snapshot and restore again, identically.
    again = e.snapshot(3.0)
    assert Engine.restore(again, config, now=3.0).snapshot(3.0) == again
    messages: dict = {}
    snapshot_fields(snapshot, messages)
    e.handle_timer(3.5)
    assert e.data_to_send(3.5) == []          # disconnected: nothing goes out before resume()
    try:
        e.resume(state, 4.0)
    except RemoteProtocolError as exc:
        check_closed_after_error(e, exc, 4.0)
        return
    sent = e.data_to_send(4.0)
    assert all(isinstance(b, bytes) for b in sent)
    if oracles:
        # What it sends (retransmissions, then the queue) is valid and is the snapshot's messages.
        check_frames_carry_messages(check_sent(e, sent), messages)
    check_bounds(e)
    service(e, 4.0, validate_sent=oracles)
    for i, data in enumerate(then):
        if not feed(e, data, 4.5 + i, validate_sent=oracles):
            break


# =================================================================================================
# Fuzzing: snapshot/restore in the middle of legitimate traffic

class _Side:
    """One peer of a two-engine session for the stateful fuzzer."""

    def __init__(self, name: str):
        self.name = name
        self.engine = Engine(SMALL, now=0.0, id_prefix=f"side-{name}..".encode()[:8])
        self.sent: set[bytes] = set()           # ids of messages sent (retries share an id)
        self.requests: list[tuple[bytes, bytes]] = []     # (id, payload) of requests sent
        self.received: dict[bytes, int] = {}    # id -> times delivered (messages and responses)
        self.answered: set[bytes] = set()

    def take_events(self, now: float) -> None:
        for ev in self.engine.events():
            assert not isinstance(ev, (SessionClosed, MessageExpired)), ev
            if isinstance(ev, (MessageReceived, ResponseReceived)):
                self.received[ev.msg_id] = self.received.get(ev.msg_id, 0) + 1
                if ev.request:
                    try:
                        self.engine.reply(ev.msg_id, app("re", ev.msg_id.hex()), now)
                        self.answered.add(ev.msg_id)
                    except QueueFull:
                        self.engine.decline(ev.msg_id)


ACTIONS = ["send", "send", "send", "big", "retry", "deliver", "deliver", "deliver", "lossy",
           "drop_link", "resume", "snapshot", "snapshot", "timer"]
snapshot_actions = st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(["a", "b"]),
                                      st.integers(0, 2**16)), min_size=1, max_size=40)
# Without re-sending a message under its own id (what the socket.io layer does today).
snapshot_actions_no_retry = st.lists(st.tuples(
    st.sampled_from([a for a in ACTIONS if a != "retry"]), st.sampled_from(["a", "b"]),
    st.integers(0, 2**16)), min_size=1, max_size=40)


@pytest.mark.timeout(120)
@fuzz_settings(150)
@given(snapshot_actions)
def test_fuzz_snapshot_restore_mid_traffic(actions):
    """Two engines exchange messages, requests (some retried under their old id, so responses
    come from the cache) and chunked messages over a link that loses batches and breaks; at any
    moment either side may be snapshotted and replaced by its restored copy, and the session
    resumed. Nothing here is hostile: no engine may raise at all, every batch sent must be valid,
    and at the end every message has been delivered exactly once."""
    _mid_traffic(actions)


@pytest.mark.timeout(120)
@fuzz_settings(400)
@given(snapshot_actions_no_retry)
def test_fuzz_snapshot_restore_mid_traffic_without_id_reuse(actions):
    """The same without re-sending messages under their own id: what the socket.io layer does
    today (more examples of the traffic it generates)."""
    _mid_traffic(actions)


def _mid_traffic(actions) -> None:
    sides = {"a": _Side("a"), "b": _Side("b")}
    link_up = True
    now = 0.0

    def pump(src: _Side, dst: _Side, loss: int) -> None:
        for i, out in enumerate(src.engine.data_to_send(now)):
            check_sent(src.engine, [out])
            if loss and (loss >> (i % 16)) & 1:
                continue
            dst.engine.receive(out, now)          # a RemoteProtocolError here is a failure
            dst.take_events(now)

    def resume_link() -> None:
        a, b = sides["a"].engine, sides["b"].engine
        state_a, state_b = a.resume_state(), b.resume_state()
        a.resume(state_b, now)
        b.resume(state_a, now)

    for action, who, arg in actions:
        now += 0.05
        side, other = sides[who], sides["b" if who == "a" else "a"]
        e = side.engine
        if action in ("send", "big") and e.has_room:
            size = 150 + arg % 200 if action == "big" else arg % 40
            payload = app("m", who, arg, b"p" * size)
            try:
                msg_id = e.send(payload, now, request=arg % 3 == 0)
            except QueueFull:
                continue
            side.sent.add(msg_id)
            if arg % 3 == 0:
                side.requests.append((msg_id, payload))
        elif action == "retry" and side.requests and e.has_room:
            msg_id, payload = side.requests[arg % len(side.requests)]
            with contextlib.suppress(QueueFull):
                e.send(payload, now, request=True, msg_id=msg_id)
        elif action in ("deliver", "lossy") and link_up:
            pump(side, other, arg if action == "lossy" else 0)
        elif action == "drop_link" and link_up:
            for s in sides.values():
                s.engine.disconnect(now)
            link_up = False
        elif action == "resume" and not link_up:
            resume_link()
            link_up = True
        elif action == "snapshot":
            if link_up:
                for s in sides.values():
                    s.engine.disconnect(now)
                link_up = False
            data = e.snapshot(now)
            side.engine = Engine.restore(data, SMALL, now=now)
            assert side.engine.snapshot(now) == data
        elif action == "timer":
            for s in sides.values():
                s.engine.handle_timer(now)
                s.take_events(now)
    # Repair the link and let everything through.
    if not link_up:
        resume_link()
    for _ in range(400):
        now += 0.25
        for s in sides.values():
            s.engine.handle_timer(now)
            s.take_events(now)
        pump(sides["a"], sides["b"], 0)
        pump(sides["b"], sides["a"], 0)
        if not any(s.engine.outbox_messages for s in sides.values()):
            break
    snapshots = sum(1 for action, _, _ in actions if action == "snapshot")
    delivered = sum(len(s.received) for s in sides.values())
    event(f"snapshots taken: {min(snapshots, 3)}{'+' if snapshots > 3 else ''}")
    event(f"messages delivered: {'0' if not delivered else '1-9' if delivered < 10 else '10+'}")
    for s, o in ((sides["a"], sides["b"]), (sides["b"], sides["a"])):
        assert s.engine.outbox_messages == 0, f"{s.name}: {s.engine.stats}"
        for msg_id in s.sent:
            assert o.received.get(msg_id) == 1, (s.name, msg_id.hex(), o.received.get(msg_id))
        assert all(n == 1 for n in o.received.values())


# =================================================================================================
# Fuzzing: application payloads and carriers

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=10), st.binary(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=12)


@st.composite
def hostile_payloads(draw):
    """Attachments and JSON that disagree: placeholders pointing anywhere, counts and lengths
    that lie, JSON that is not a list."""
    attachments = draw(st.lists(st.binary(max_size=8), max_size=4))
    count = draw(st.one_of(st.just(len(attachments)), st.sampled_from(BOUNDARY)))
    head = leb128(count) + b"".join(
        leb128(draw(st.one_of(st.just(len(a)), st.integers(0, 20)))) + a for a in attachments)
    placeholder = {"_placeholder": draw(st.sampled_from([True, False, 1, None])),
                   "num": draw(st.one_of(st.integers(-2, 5), st.sampled_from(["0", 0.0, None,
                                                                               True, 2**70])))}
    body = draw(st.sampled_from([[placeholder], [[placeholder], "x"], {"a": placeholder},
                                 placeholder, "str", 5, [], [{"_placeholder": True}]]))
    text = json.dumps(body).encode()
    return draw(st.sampled_from([head + text, b"\x00" + text, head]))


@pytest.mark.timeout(120)
@fuzz_settings(500)
@given(st.one_of(mutated(MUTATION_SEEDS["payload"], walker=payload_fields), hostile_payloads(),
                 st.lists(json_values, max_size=5).map(lambda v: payload_codec.encode(v))))
def test_fuzz_payload_decode(data):
    try:
        items = payload_codec.decode(data)
    except RemoteProtocolError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        return
    assert isinstance(items, list)
    encoded = payload_codec.encode(items)           # what was decoded can be sent again
    assert payload_codec.encode(payload_codec.decode(encoded)) == encoded


@pytest.mark.timeout(120)
@fuzz_settings(600)
@given(st.one_of(mutated(MUTATION_SEEDS["carrier"]),
                 st.tuples(st.text(max_size=130), st.binary(max_size=20)).map(
                     lambda t: bytes((len(t[0].encode()) & 0xFF,)) + t[0].encode() + t[1]),
                 st.binary(max_size=40)))
def test_fuzz_split_carrier(data):
    try:
        namespace, rest = wire.split_carrier(data)
    except RemoteProtocolError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        return
    assert isinstance(namespace, str) and isinstance(rest, bytes)
    assert data.endswith(rest) and len(rest) == len(data) - 1 - data[0]
    assert wire.split_carrier(wire.carrier_prefix(namespace) + rest) == (namespace, rest)


# =================================================================================================
# Regression tests: bugs the fuzzers found (each failed until relio was fixed)

def test_regress_duplicate_complete_chunk_is_not_mixed_with_its_first_copy():
    """Found by test_fuzz_engine_receive_*: a chunked message sent complete (one chunk covering
    all of it) under two sequence numbers, both held behind a gap. When the gap filled, the first
    copy completed the message (its reassembly finished and forgotten); the second copy started
    the "same" message again, was complete at once, and ``Reassembler.finish`` raised
    LocalProtocolError("no reassembly in progress") out of ``Engine.receive`` (edc730e made it
    RemoteProtocolError "the chunks of a message arrived twice", closing the session). That is
    what a sender's legitimate retry looks like once the first copy is acknowledged (see
    test_regress_retry_of_a_chunked_message_held_behind_a_gap_is_not_mixed): now the second copy
    is refused while the first one is held complete, and dropped by id when resent."""
    e, _ = ref_engine()
    data = (CORPUS / "engine" / "ok-retried-chunk-held-behind-gap.bin").read_bytes()
    e.receive(data, 1.0)
    got = [ev for ev in e.events() if isinstance(ev, MessageReceived)]
    assert [ev.payload for ev in got] == [app("first"), b"a" * 10]
    assert e.stats["frames_refused"] == 1 and not e.closed
    assert e.resume_state() == F.encode_ack(2)              # seq 2 is not acknowledged
    again = F.decode_batch(data)[1]                          # seq 2, resent
    e.receive(batch(F.encode_data(again.seq, again.msg_id, again.payload, flags=again.flags,
                                  total=again.total, offset=again.offset)), 2.0)
    assert e.events() == [] and e.stats["duplicates_dropped"] == 1
    assert e.resume_state() == F.encode_ack(3) and not e.closed


def test_regress_restore_rejects_a_queued_message_that_is_already_framed():
    """Found by test_fuzz_engine_restore: a snapshot whose send queue lists a message that is
    already wholly framed (all its frames in flight) was accepted by ``Engine.restore``
    (``_load`` only rejected a message that is neither in flight nor queued). After ``resume`` the
    engine "framed" the rest of it: a DATA frame of 0 bytes with a new seq, flagged CHUNK for a
    chunked message, which its peer rejects (``empty chunk``, the session dies), or an empty
    unchunked message under the same id. Fixed: ``_load`` checks the queue against the framing
    (a queued message is not wholly framed, only its head may be framed in part, no message is
    queued twice)."""
    data = (CORPUS / "restore" / "regress-queued-message-fully-framed.bin").read_bytes()
    with pytest.raises(RemoteProtocolError) as info:
        Engine.restore(data, SMALL, now=3.0)
    assert info.value.reason.startswith("snapshot:"), info.value.reason


def test_regress_restore_rejects_in_flight_frames_that_cut_an_unchunked_message():
    """Found by test_fuzz_engine_restore: ``_load`` checked an in-flight frame only against
    ``offset + length <= framed`` and ``length <= chunk_size``, not against the message's
    layout. A frame [4, 12) of a 12-byte unchunked message was accepted; after ``resume`` it was
    retransmitted as a DATA frame without CHUNK carrying bytes 4-11 only, and the peer delivered
    that truncated payload as the whole message (silent corruption). Fixed: the frames of an
    unchunked message must be [0, size); chunk k must be at offset k * chunk_size with its full
    length, on the seq of chunk 0 plus k."""
    data = (CORPUS / "restore" / "regress-in-flight-frame-cuts-unchunked-message.bin").read_bytes()
    with pytest.raises(RemoteProtocolError) as info:
        Engine.restore(data, SMALL, now=3.0)
    assert info.value.reason.startswith("snapshot:"), info.value.reason


def test_regress_retried_chunked_request_is_not_mixed_with_its_first_copy():
    """Found by test_fuzz_snapshot_restore_mid_traffic, with legitimate traffic only: a chunked
    request re-sent under its own id (``Engine.send(..., msg_id=...)``, documented for retries)
    while the first copy was still unacknowledged went out as a second copy (seqs 4-7 after
    0-3). With the first batch lost, the receiver held the retry's last chunks in the reassembly
    buffer of the first copy, completed the first copy from it, then failed the retry (``message
    ended with 128 of its 194 bytes received``) and closed the session. Fixed: an outbox holds one
    message per id; ``send`` with an id still pending queues nothing and returns the id."""
    a = Engine(SMALL, now=0.0, id_prefix=b"side-a..")
    b = Engine(SMALL, now=0.0, id_prefix=b"side-b..")
    payload = app("m", "a", 0, b"p" * 150)                 # 194 bytes: 4 chunks of <= 64
    msg_id = a.send(payload, 0.0, request=True)
    assert a.send(payload, 0.0, request=True, msg_id=msg_id) == msg_id     # the retry, same id
    assert a.outbox_messages == 1 and a.stats["messages_sent"] == 1
    sent = a.data_to_send(0.0)
    frames = check_sent(a, sent)
    assert [(f.seq, f.offset) for f in frames] == [(0, 0), (1, 64), (2, 128), (3, 192)]
    b.receive(sent[-1], 0.1)                               # the first batch is lost
    now = 0.1
    for _ in range(50):                                    # retransmissions until delivered
        now += 0.5
        a.handle_timer(now)
        for out in a.data_to_send(now):
            b.receive(out, now)
        for out in b.data_to_send(now):
            a.receive(out, now)
        if not a.outbox_messages:
            break
    assert [ev.msg_id for ev in b.events() if isinstance(ev, MessageReceived)] == [msg_id]
    assert not b.closed and a.outbox_messages == 0


def test_regress_retry_of_a_chunked_message_held_behind_a_gap_is_not_mixed():
    """Found by test_fuzz_snapshot_restore_mid_traffic once a pending id could no longer be sent
    twice: a chunked request wholly acknowledged but held by the receiver behind a gap (so not
    delivered, not answered), and retried by the sender under its id. The retry's chunks went
    into the first copy's (complete) reassembly buffer; when the gap filled, the first copy was
    delivered and the retry's chunks then failed with ``the chunks of a message arrived twice``,
    closing the session. Fixed: a chunk of a message already complete and held is refused (not
    acknowledged); resent later, it is reassembled on its own and dropped by id."""
    b = Engine(SMALL, now=0.0, id_prefix=b"side-b..")
    request = mid("x", 1)
    payload = b"p" * 194

    def copy(seq0):
        return batch(*[F.encode_data(seq0 + i, request, payload[o:o + 64],
                                     flags=F.CHUNK | F.REQUEST, total=194, offset=o)
                       for i, o in enumerate(range(0, 194, 64))])

    b.receive(copy(1), 0.1)               # the first copy, held: seq 0 is missing
    b.receive(copy(5), 0.2)               # the retry (the sender had all of copy 1 acknowledged)
    assert b.stats["frames_refused"] == 4
    b.receive(batch(F.encode_data(0, mid("m", 0), app("m0"))), 0.3)       # the gap fills
    got = [ev for ev in b.events() if isinstance(ev, MessageReceived)]
    assert [(ev.msg_id, ev.payload) for ev in got] == [(mid("m", 0), app("m0")),
                                                      (request, payload)]
    b.receive(copy(5), 0.4)               # the retry, retransmitted: dropped by id
    assert b.events() == [] and not b.closed
    assert b.resume_state() == F.encode_ack(9)
    assert b.stats["duplicates_dropped"] == 1


def test_regress_snapshot_keeps_a_resent_response_apart_from_the_original():
    """Found by the snapshot fuzzers: legitimate state. An engine answers a request with a
    chunked response; the requester retries the request (same id) before acknowledging it, so
    the engine queued the cached response again under the same response id: two outbox
    messages with one id. ``snapshot()`` indexes messages by id, so the resend's queue entry
    pointed at the original (already framed and in flight): the restored engine had one message
    in flight *and* queued, and after ``resume`` it sent an empty CHUNK frame (``empty chunk``),
    on which its peer closed the session. Fixed: a retried request whose response is still
    pending has that response's unacknowledged frames retransmitted, no second copy."""
    e = Engine(SMALL, now=0.0, id_prefix=b"responde")
    request = mid("req", 1)
    e.receive(batch(F.encode_data(0, request, app("q"), flags=F.REQUEST)), 0.0)
    e.events()
    response = e.reply(request, app("answer", BLOB), 0.0)     # chunked response, in flight
    first = check_sent(e, e.data_to_send(0.0))
    e.receive(batch(F.encode_data(1, request, app("q"), flags=F.REQUEST)), 2.0)   # retried
    assert e.stats["responses_resent"] == 1 and e.outbox_messages == 1
    again = check_sent(e, e.data_to_send(2.0))      # the same frames, retransmitted
    assert ([(f.seq, f.offset) for f in again if isinstance(f, F.DataFrame)]
            == [(f.seq, f.offset) for f in first if isinstance(f, F.DataFrame)])
    restored = Engine.restore(e.snapshot(2.1), SMALL, now=2.2)
    assert restored.outbox_messages == 1
    restored.resume(F.encode_ack(0), 2.4)
    frames = check_sent(restored, restored.data_to_send(2.4))
    messages: dict = {}
    snapshot_fields(e.snapshot(2.1), messages)
    check_frames_carry_messages(frames, messages)
    assert {f.msg_id for f in frames if isinstance(f, F.DataFrame)} == {response}


def test_regress_snapshot_of_a_queued_retry_can_be_restored():
    """Found by test_fuzz_snapshot_restore_mid_traffic (same cause as above): a request and its
    retry under the same id (``send(..., msg_id=...)``), both still queued. ``snapshot()`` listed
    the message once but queued it twice, so ``restore()`` refused its own engine's snapshot:
    ``snapshot: 2 queued messages exceed the limit of 1``. Fixed: the retry of a pending id
    queues nothing, and restore rejects a snapshot with two messages of one id."""
    e = Engine(SMALL, now=0.0, id_prefix=b"side-a..")
    payload = app("m", 1)
    msg_id = e.send(payload, 0.0, request=True)
    assert e.send(payload, 0.0, request=True, msg_id=msg_id) == msg_id
    data = e.snapshot(0.1)
    restored = Engine.restore(data, SMALL, now=0.2)
    assert restored.outbox_messages == 1 and restored.snapshot(0.2) == data
    # A snapshot listing two messages under one id (what the old engine could write) is refused.
    pos, size, _ = _named_field(data, "count:messages")
    age, _, _ = _named_field(data, "f64:age")
    message = data[pos + size:age + 8]
    doubled = data[:pos] + varint(2) + message + message + data[age + 8:]
    with pytest.raises(RemoteProtocolError) as info:
        Engine.restore(doubled, SMALL, now=0.2)
    assert info.value.reason == "snapshot: two messages with the same id"


def test_regress_held_requests_count_against_max_pending_requests():
    """Found by the fuzzers' bounds check: ``max_pending_requests`` ("a peer cannot start
    unbounded numbers of handlers") is only enforced for a request arriving in order
    (``_on_data``, ``seq == base``). Requests ahead of a gap are held and acknowledged without
    the check, and ``_drain_held`` delivers them all once the gap fills: a peer that sends
    requests 1..n before 0 gets n + 1 handlers running (up to ``receive_window``, 65536 by
    default, instead of 1024). Fixed in edc730e (held requests count against the limit)."""
    e, _ = ref_engine()
    requests = [F.encode_data(i + 1, mid("req", i), app("q", i), flags=F.REQUEST)
                for i in range(7)]
    e.receive(batch(*requests, F.encode_data(0, mid("req", 99), app("q"), flags=F.REQUEST)),
              1.0)
    delivered = [ev for ev in e.events() if isinstance(ev, MessageReceived) and ev.request]
    assert len(e.awaiting_reply) == len(delivered)
    assert len(e.awaiting_reply) <= SMALL.max_pending_requests, (
        f"{len(e.awaiting_reply)} requests pending, max_pending_requests is "
        f"{SMALL.max_pending_requests}")


def test_regress_restore_reasons_start_with_snapshot():
    """docs/PROTOCOL.md (snapshot appendix): any inconsistency raises RemoteProtocolError "with a
    reason starting ``snapshot:``". A chunk stream whose total exceeds max_message_size is
    reported by the reassembler as ``message of 2000 bytes exceeds max_message_size (1024)``
    (minor: the type is right, the reason does not say it is the snapshot). Fixed in edc730e."""
    data = (CORPUS / "restore" / "bad-chunk-stream-total-too-big.bin").read_bytes()
    with pytest.raises(RemoteProtocolError) as info:
        Engine.restore(data, SMALL, now=3.0)
    assert info.value.reason.startswith("snapshot:"), info.value.reason


if __name__ == "__main__":          # python -m tests.test_fuzz: rewrite the corpus
    written = write_corpus()
    print(f"wrote {len(written)} corpus files to {CORPUS}")
