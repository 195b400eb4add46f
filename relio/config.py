"""relio's tuning constants: one documented configuration object and its defaults.

Every limit the engine enforces and every timer it runs is a field of :class:`Config`. The engine
reads a ``Config`` once, when a session is created; the socket.io layer passes the same object to
every session it creates. Both peers of a session should use compatible values: a sender never puts
more than ``max_inflight_messages`` sequence numbers in flight, and a receiver accepts sequence
numbers up to ``receive_window`` ahead of its cumulative point, so
``max_inflight_messages <= receive_window`` must hold between the two sides (checked for the local
side here; the peer advertises its window when a session starts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Config:
    """Limits and timers of one relio session (both the sender and the receiver half).

    Times are in seconds, sizes in bytes. ``None`` for a time means "never".
    """

    # --- framing and chunking -----------------------------------------------------------------
    #: Largest payload carried by one frame; bigger payloads are split into chunks of this size so
    #: a heartbeat PONG never waits behind more than one chunk.
    chunk_size: int = 64 * KiB
    #: A client's ``chunk_size`` towards a relio server that says it takes batches this big (its
    #: ``max_batch_size``, in the CONNECT answer; towards any other server: ``chunk_size``). Each
    #: transport message costs a server a fixed ~50 µs in engine.io and the websocket layer besides
    #: relio's own work: a 50 MiB upload in 64 KiB chunks (800 messages) cost the server ~20% more
    #: CPU than in 256 KiB ones, and the server is what limits an upload's rate on a fast link.
    #: Servers and their sessions keep ``chunk_size`` (a client does not say what it takes). A
    #: client that lowers ``chunk_size`` (for a heartbeat on a very slow link) lowers this too;
    #: at or below ``chunk_size`` it changes nothing.
    upload_chunk_size: int = 256 * KiB
    #: Largest message (payload) accepted or sent, in bytes. A bigger ``send`` is refused locally;
    #: a peer announcing a bigger one is a protocol error.
    max_message_size: int = 64 * MiB
    #: Largest batch (one transport message holding several frames) this side will decode. A
    #: sender closes a batch at ``coalesce_bytes`` unless its first frame alone is bigger (one chunk
    #: plus an ACK), so this must be at least the larger of the two (checked below). A server says
    #: it in the handshake; it holds one ``upload_chunk_size`` chunk (the 128 KiB of peers that do
    #: not say theirs, the JavaScript client and relio before it said it, holds one of 64 KiB).
    max_batch_size: int = 256 * KiB + 64 * KiB
    #: Most frames a single batch may hold (bounds the work one transport message can cause).
    max_frames_per_batch: int = 4096
    #: Target size of one outgoing batch when several small frames are ready (coalescing).
    coalesce_bytes: int = 60 * KiB

    # --- receive side -------------------------------------------------------------------------
    #: Sequence numbers accepted beyond the cumulative ack point (selective-ack bitmap size).
    #: Must be a power of two.
    #: 8192 is twice the peers' default ``max_inflight_messages`` (a 1 KiB bitmap per session; 65536
    #: cost 8 KiB of every idle session's ~16 KB).
    receive_window: int = 8192
    #: Bytes of out-of-order data held while waiting for a gap to fill. Frames beyond it are not
    #: acknowledged (the sender retransmits them later), so nothing is lost.
    max_reorder_bytes: int = 16 * MiB
    #: Messages being reassembled from chunks at once (per session).
    max_reassemblies: int = 64
    #: Bytes preallocated for reassemblies at once (per session), beyond the head-of-line message,
    #: which is always admitted so that the stream can always make progress.
    max_reassembly_bytes: int = 128 * MiB
    #: Most ack ranges put in one ACK frame (QUIC/SCTP style; older ranges are re-sent later).
    max_ack_ranges: int = 32
    #: How long a receiver may delay an ACK hoping to piggyback it on data (QUIC's max_ack_delay).
    max_ack_delay: float = 0.010
    #: Send an ACK at once after this many new frames, even if the delay has not run out.
    ack_every: int = 64
    #: ... or after this many new payload bytes: a quarter of the default ``max_inflight_bytes``, so
    #: that a big transfer's window reopens before it drains (measured: with only ``ack_every``, a
    #: 50 MiB upload waited ``max_ack_delay`` per 1 MiB window and ran at 0.65x python-socketio).
    ack_every_bytes: int = 256 * KiB

    #: Received messages handled in one turn of the event loop when their handlers produce
    #: something to send (answers to calls, emits). After that many, what they produced is written
    #: at once and the rest waits for the next turn: one session's big batch does not hold up the
    #: other sessions for long, and the peer starts on the first answers while this side handles
    #: the rest. That last part is the pipeline between the two ends: with every answer of a batch
    #: written at once, requester and responder take turns (each idle while the other works), and
    #: 64 concurrent calls, which arrive as one batch, ran at 20-28k calls/s; answered 32 at a time
    #: the two ends overlap and the same run gave 28-48k (2 cores, six interleaved runs, CPU per
    #: call unchanged at ~20 µs a side). Smaller slices cost each batch's engine.io overhead more
    #: often (16 was no faster than 32). A turn ends early only when something waits to be sent.
    events_per_turn: int = 32

    #: How late a ``call()``'s timeout may fire: calls whose deadlines fall in the same tick of
    #: this length share one loop timer (a timer per call cost ~2 µs of a small call's CPU).
    call_timeout_resolution: float = 0.01

    #: The peer's requests (``call``/emit with callback) delivered to the application and not yet
    #: answered or declined, at once. Beyond it new requests are not acknowledged (the peer sends
    #: them again later): a peer cannot start unbounded numbers of handlers. Requests nobody
    #: handles are declined at once and do not count.
    max_pending_requests: int = 1024

    # --- deduplication and responses -----------------------------------------------------------
    #: Message ids remembered to drop duplicates (oldest forgotten first).
    id_set_capacity: int = 100_000
    #: Cached handler responses, by count, bytes and age. An entry is released as soon as the
    #: requester acknowledges the response; the request id stays in the id set.
    response_cache_entries: int = 10_000
    response_cache_bytes: int = 16 * MiB
    response_cache_ttl: float = 120.0

    # --- send side ----------------------------------------------------------------------------
    #: Messages accepted but not yet acknowledged (queued plus in flight). ``send`` beyond it
    #: raises :class:`relio.QueueFull`; the asyncio layer waits for room instead.
    max_outbox_messages: int = 10_000
    #: Bytes accepted but not yet acknowledged (queued plus in flight).
    max_outbox_bytes: int = 256 * MiB
    #: Sequence numbers in flight (sent, not acknowledged) at once.
    max_inflight_messages: int = 4096
    #: Bytes in flight at once. Keeps the transport's own queue short so heartbeats get through:
    #: engine.io queues a PING/PONG behind everything already handed to it, and its server resets
    #: the heartbeat only on PONG. Measured through a throttled proxy with ping_timeout=2 s, 0.66 MB
    #: queued at 1 MB/s delayed a probe 0.72 s while 1.31 MB at 300 kB/s killed the connection; with
    #: the default 20 s timeout, 1 MiB stays safe down to about 100 kB/s.
    max_inflight_bytes: int = 1 * MiB
    #: RFC 6298 retransmission timer: initial, floor and ceiling of the timeout.
    initial_rto: float = 1.0
    min_rto: float = 0.2
    max_rto: float = 10.0
    #: Later sequence numbers acknowledged past a hole before it is retransmitted (fast retransmit).
    fast_retransmit_threshold: int = 3
    #: A message not acknowledged this long after it was first sent closes the session and expires
    #: every pending message (``None``: only the session's lifetime bounds it).
    delivery_timeout: float | None = None

    # --- sessions (server side) ----------------------------------------------------------------
    #: How long a disconnected session waits for its client to resume it before it expires (and
    #: every message still pending in it is reported expired).
    session_ttl: float = 120.0
    #: How long a client's ``disconnect()`` waits for its pending messages to be acknowledged before
    #: ending the session (what is still pending then fails with DeliveryError).
    drain_timeout: float = 5.0
    #: How long a reconnecting client waits for the server's answer to its resume before the
    #: attempt counts as failed (and is retried; the session stays suspended). python-socketio
    #: waits 1 s for a namespace's CONNECT answer, which a resume whose ``connect``/``relio_resume``
    #: handler checks a token, or a stalled link, easily exceeds.
    resume_wait_timeout: float = 10.0
    #: Disconnected sessions kept at once per server, whatever the clients do; beyond it the one
    #: disconnected longest expires first.
    max_parked_sessions: int = 10_000

    # --- the thread-based shell (relio.Server, relio.Client) ----------------------------------
    #: How long a session's handler thread waits for the next message once its queue is empty
    #: before it ends. Starting a thread costs ~0.1 ms; a busy session's messages arrive in batches
    #: a few ms apart, so without this each batch started a thread of its own (bench/sync_bench.py,
    #: small client-to-server emits: 1,700/s without, 18,000/s with). An idle session keeps no
    #: thread.
    handler_thread_linger: float = 0.05

    # --- several server nodes (relio.AsyncRedisManager) ---------------------------------------
    #: Emits waiting to be appended to the Redis bus, per process. Beyond it ``emit`` waits for room
    #: (backpressure while Redis is slow or away) or raises QueueFull with ``block=False``.
    relay_queue_messages: int = 10_000
    #: How long an emit waits for Redis to accept it: after this its Delivery fails with
    #: RelayError (and an emit that could not even be queued raises it).
    relay_timeout: float = 10.0
    #: Entries appended per Redis round trip (one Lua call). 64-256 is where batching stops paying.
    relay_batch: int = 256
    #: Entries read per XREAD.
    relay_read_count: int = 512
    #: Durable mode saves a session on every batch: of its id set (16 bytes per delivered message,
    #: up to ``id_set_capacity``) it keeps the newest this many ids, which cover every message its
    #: peer can still be retrying (a full id set made saves ~1.6 MB and p50 +9 ms, measured).
    durable_id_tail: int = 1024
    #: Approximate cap of the bus stream. A node further behind than this loses entries (reported
    #: as a gap). At ~200 bytes per entry, the default keeps ~200 MB in Redis at most.
    relay_stream_maxlen: int = 1_000_000

    def __post_init__(self) -> None:
        if self.receive_window <= 0 or self.receive_window & (self.receive_window - 1):
            raise ValueError("receive_window must be a power of two")
        if not 0 < self.max_inflight_messages <= self.receive_window:
            raise ValueError("max_inflight_messages must be in 1..receive_window")
        if self.chunk_size < 1 or self.upload_chunk_size < 1:
            raise ValueError("chunk_size and upload_chunk_size must be positive")
        if max(self.coalesce_bytes, self.largest_single_frame_batch) > self.max_batch_size:
            raise ValueError("max_batch_size must hold coalesce_bytes and one whole chunk frame "
                             f"with an ACK (needs {self.largest_single_frame_batch})")
        if self.max_message_size < 1:
            raise ValueError("max_message_size must be positive")
        if not self.relay_timeout > 0:
            raise ValueError("relay_timeout must be positive")
        if not self.resume_wait_timeout > 0:
            raise ValueError("resume_wait_timeout must be positive")
        if not self.call_timeout_resolution > 0:
            raise ValueError("call_timeout_resolution must be positive")
        if not self.session_ttl > 0:
            raise ValueError("session_ttl must be positive")
        if not 0 < self.min_rto <= self.initial_rto <= self.max_rto:
            raise ValueError("need 0 < min_rto <= initial_rto <= max_rto")
        for name in ("max_outbox_messages", "max_outbox_bytes", "max_inflight_bytes",
                     "id_set_capacity", "response_cache_entries", "response_cache_bytes",
                     "max_ack_ranges", "ack_every", "max_reassemblies", "max_frames_per_batch",
                     "fast_retransmit_threshold", "coalesce_bytes", "max_parked_sessions",
                     "max_pending_requests", "ack_every_bytes", "events_per_turn",
                     "relay_queue_messages", "relay_batch", "relay_read_count",
                     "relay_stream_maxlen", "durable_id_tail"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    @property
    def largest_single_frame_batch(self) -> int:
        """Bytes of the largest batch holding one chunk: version byte, the biggest ACK frame
        (type + 3 varints + two varints per range) and a DATA frame header (at most 60 bytes)."""
        return 1 + (1 + 3 * 8 + 16 * self.max_ack_ranges) + 60 + self.chunk_size

    def replace(self, **changes) -> Config:
        """Return a copy with some fields changed (validated like the original)."""
        return dataclasses.replace(self, **changes)


DEFAULT_CONFIG = Config()
