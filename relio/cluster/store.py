"""The session store: relio sessions saved in Redis and moved between server nodes.

:class:`RedisSessionStore` is the :class:`~relio.asyncio.hosting.SessionHost` of
``relio.AsyncRedisManager``. It keeps one record per session (:mod:`relio.cluster.records`: epoch,
owner, snapshot, credential hashes) and moves sessions:

* a client that resumes through another node makes that node :meth:`claim` the session: a live
  owner is asked over the bus to hand it over (:meth:`hand_over`: running handlers first, bounded,
  then a final save released to the new owner); a dead owner (its liveness key expired) or a silent
  one (no hand-over within :data:`HANDOVER_TIMEOUT`) is taken over from its last save, and the epoch
  it claimed fences the old owner's later writes off;
* the new node restores the engine, rooms and session data (``server.relio_adopt``) and catches up
  the bus entries published after the snapshot's position (under the bus's apply lock);
* in ``durable`` mode every session is a :class:`~relio.asyncio.durable.DurableChannel`: nothing
  leaves it, and no handler sees a message, before the state including it is saved here. A save
  writes the snapshot (naming the unacknowledged messages by id) and the records of the messages
  new since the last save (``Engine.snapshot_apart``, :mod:`relio.cluster.records`), not the whole
  outbox again; a hand-over writes the snapshot whole.

The store talks to the server only through the host interface: ``server.relio_registry``,
``relio_export``, ``relio_adopt``, ``relio_release``.
"""

from __future__ import annotations

import asyncio
import base64
import json as stdlib_json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relio.asyncio.channel import Channel
from relio.asyncio.dispatch import spawn
from relio.asyncio.durable import DurableChannel
from relio.asyncio.hosting import SessionHost
from relio.binding.sessions import UNKNOWN_SESSION
from relio.cluster import records
from relio.cluster.bus import EMIT, ENTER_ROOM, HANDOVER, SESSION_ENTRY_KINDS, RedisBus, id_tuple
from relio.config import Config
from relio.engine.errors import RemoteProtocolError
from relio.observe.instruments import LATENCY_BUCKETS, Histogram

if TYPE_CHECKING:
    from relio.asyncio.registry import ServerSession
    from relio.engine import Engine

#: How long a node asking for a session waits for its live owner to hand it over before taking the
#: owner's last saved state (the owner is paused or partitioned from its clients).
HANDOVER_TIMEOUT = 3.0
#: How long an owner waits for the handlers of the client's messages still running before it hands
#: the session over (their answers go with it); a handler running longer loses its answer.
HANDOVER_HANDLER_WAIT = 2.0
#: Modes (see docs/SCALING.md).
FAST, DURABLE = "fast", "durable"


class _RecordState:
    """What the store keeps for one session it owns (``ServerSession.host_state``)."""

    __slots__ = ("epoch", "save_lock", "save_failed", "stored", "hashed", "hashes")

    def __init__(self, epoch: int = 1, stored: set[bytes] | None = None):
        #: the epoch this node claimed (or created) the record with: its writes are fenced by it
        self.epoch = epoch
        #: ids of the messages whose records the record holds (see :mod:`relio.cluster.records`):
        #: a save writes only the others. Added once a save that wrote them succeeded; removed
        #: when a state that deletes them is taken (so a later state writes a message again if
        #: its id comes back before that delete is done).
        self.stored: set[bytes] = stored if stored is not None else set()
        #: the credentials last hashed, and their hashes (durable mode saves at every batch;
        #: the credentials change only when the client resumes)
        self.hashed: tuple | None = None
        self.hashes: tuple[str, str] = ("", "")
        #: saves of one session reach Redis in the order their states were taken
        self.save_lock = asyncio.Lock()
        #: the last save failed (Redis away): the liveness loop saves it again
        self.save_failed = False

    def credential_hashes(self, credential: str | None,
                          previous: str | None) -> tuple[str, str]:
        """What the record stores of the session's credentials (see :mod:`records`)."""
        if self.hashed != (credential, previous):
            self.hashed = (credential, previous)
            self.hashes = (records.credential_hash(credential),
                           records.credential_hash(previous))
        return self.hashes


class RedisSessionStore(SessionHost):
    """Session records in Redis, and sessions moving between nodes (see the module docstring).

    :param bus: the node's :class:`~relio.cluster.bus.RedisBus` (hand-over requests travel on it,
                and a session taken over is caught up from it).
    :param replay: ``await replay(session, fields)`` applies one bus entry to one adopted session
                   (the manager knows what entries mean).
    """

    movable = True

    def __init__(self, bus: RedisBus, mode: str, config: Callable[[], Config],
                 log: Callable[[], logging.Logger],
                 replay: Callable[[ServerSession, dict], Any]):
        if mode not in (FAST, DURABLE):
            raise ValueError(f"mode must be {FAST!r} or {DURABLE!r}")
        self.bus = bus
        self.mode = mode
        self._config = config
        self._log = log
        self._replay = replay
        self._scripts: tuple | None = None
        self._alive: asyncio.Task | None = None
        self._alive_key = f"relio:{bus.channel}:node:{bus.host_id}"
        #: ``saved``, ``save_failed``, ``claimed`` (taken over from another node), ``forced``
        #: (taken from an owner that did not hand over), ``handed_over``, ``fenced`` (dropped here
        #: because another node owns them now), ``replayed`` (bus entries caught up on takeovers),
        #: ``refreshed`` (record lifetimes extended)
        self.stats = {"saved": 0, "save_failed": 0, "claimed": 0, "forced": 0,
                      "handed_over": 0, "fenced": 0, "replayed": 0, "refreshed": 0}
        #: seconds each save took (Redis round trip and waiting for the session's save lock)
        self.save_latency = Histogram(LATENCY_BUCKETS)

    @property
    def config(self) -> Config:
        return self._config()

    def _redis(self):
        client = self.bus.client()
        if self._scripts is None:
            self._scripts = (client.register_script(records.SAVE_SCRIPT),
                             client.register_script(records.CLAIM_SCRIPT),
                             client.register_script(records.END_SCRIPT))
        return client

    def start(self) -> None:
        """Keep this node's liveness key and the records of its sessions (a serving node)."""
        self._alive = asyncio.get_running_loop().create_task(self._alive_loop())

    async def close(self) -> None:
        if self._alive is not None:
            self._alive.cancel()
            try:
                await self._alive
            except (asyncio.CancelledError, Exception):
                pass
            self._alive = None
            if self.bus.has_client:
                try:
                    await self.bus.client().delete(self._alive_key)
                except Exception:
                    pass

    def _record_key(self, sid: str) -> str:
        return f"relio:{self.bus.channel}:s:{sid}"

    def _record_ttl_ms(self) -> int:
        return int((self.config.session_ttl + records.RECORD_TTL_MARGIN) * 1000)

    # --- SessionHost ---------------------------------------------------------------------------
    def make_channel(self, engine: Engine, handler: Any, *, json: Any, sid: str,
                     namespace: str) -> Channel:
        if self.mode == DURABLE:
            return DurableChannel(engine, handler, json=json, sid=sid, namespace=namespace,
                                  capture=self.capture, persist=self.persist)
        return Channel(engine, handler, json=json, sid=sid, namespace=namespace)

    def suspended(self, session: ServerSession) -> None:
        spawn(self.save(session))

    def resumed(self, session: ServerSession) -> None:
        spawn(self.save(session))

    def ended(self, session: ServerSession, reason: str) -> None:
        spawn(self._end(session, reason))

    async def hand_over_all(self) -> None:
        """Server shutdown: every session is saved and released for another node to resume."""
        sessions = list(self.server.relio_registry)
        await asyncio.gather(*(self.hand_over(s) for s in sessions), return_exceptions=True)

    # --- records -------------------------------------------------------------------------------
    @staticmethod
    def _record_state(session: ServerSession) -> _RecordState:
        state = session.host_state
        if state is None:
            state = session.host_state = _RecordState()
        return state

    def _state_of(self, session: ServerSession, max_ids: int = -1, whole: bool = False) -> tuple:
        """The session's record state, taken now (synchronously, with the bus position it
        includes, under the session's lock), its credential hashes, the message records to
        write and those to delete. ``whole``: the snapshot with every message in it (a hand-over:
        the format nodes of earlier versions read too, so that a rolling deploy moves sessions
        both ways)."""
        record = self._record_state(session)
        stored = record.stored
        added: list[bytes] = []
        gone: list[bytes] = []
        packed = b""
        with session.channel.lock:
            if whole:
                meta, snapshot = self.server.relio_export(session, max_ids)
            else:
                meta, snapshot, added, packed, gone = self.server.relio_export_apart(
                    session, max_ids, stored)
                stored.difference_update(gone)
            meta["bus"] = self.bus.applied_id.decode()
            running = getattr(session.channel, "running", None)
            if running:
                meta["running"] = [[msg_id.hex(), base64.b64encode(payload).decode(), request]
                                   for msg_id, (payload, request) in running.items()]
        cred, prev = record.credential_hashes(session.record.credential,
                                              session.record.previous_credential)
        try:
            blob = records.pack_state(meta, snapshot)
        except (TypeError, ValueError) as exc:
            self._log().warning("relio: session %s: its session data cannot move to another node "
                                "(not JSON: %s); it moves without it", session.sid, exc)
            meta["session"] = None
            blob = records.pack_state(meta, snapshot)
        return blob, cred, prev, added, packed, b"".join(gone)

    def _session_of(self, channel: Channel) -> ServerSession | None:
        session = self.server.relio_registry.get(channel.sid)
        return session if session is not None and session.channel is channel else None

    def capture(self, channel: DurableChannel):
        """Durable mode: the session's state now (see :meth:`persist`)."""
        session = self._session_of(channel)
        if session is None:
            return None
        return self._state_of(session, self.config.durable_id_tail)

    async def persist(self, channel: DurableChannel, state) -> bool:
        """Durable mode: save ``state`` before what it includes leaves or reaches a handler."""
        session = self._session_of(channel)
        if session is None or state is None:
            return False
        return await self.save(session, state=state)

    async def save(self, session: ServerSession, release: bool = False, state=None) -> bool:
        """Write the session's record (when it is suspended, resumed or handed over, and in
        durable mode after every change). False if Redis did not take it; a session this node no
        longer owns is dropped here (fenced)."""
        if state is None:
            state = self._state_of(session)
        blob, cred, prev, added, packed, gone = state
        record = self._record_state(session)
        self._redis()
        assert self._scripts is not None
        started = time.perf_counter()
        try:
            async with record.save_lock:
                ok = await self._scripts[0](keys=[self._record_key(session.sid)],
                                            args=[record.epoch, self.bus.host_id, blob, cred, prev,
                                                  self._record_ttl_ms(), 1 if release else 0,
                                                  packed, gone])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.bus.redis_trouble(exc, "save session")
            self.stats["save_failed"] += 1
            record.save_failed = True
            return False
        self.bus.redis_ok()
        record.save_failed = False
        if ok:
            record.stored.update(added)
        else:
            self.stats["fenced"] += 1
            self._log().warning("relio: session %s is owned by another node now: dropped here",
                                session.sid)
            self.server.relio_release(session, "the session moved to another node")
            return False
        self.stats["saved"] += 1
        self.save_latency.observe((), time.perf_counter() - started)
        return True

    async def _end(self, session: ServerSession, reason: str) -> None:
        """The session ended: mark its record so that no node resumes (or resurrects) it."""
        self._redis()
        assert self._scripts is not None
        try:
            await self._scripts[2](keys=[self._record_key(session.sid)],
                                   args=[self._record_state(session).epoch, reason[:200],
                                         int(records.RECORD_TTL_MARGIN * 1000)])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.bus.redis_trouble(exc, "end session")

    async def _alive_loop(self) -> None:
        """Keep this node's liveness key (other nodes ask a live owner to hand a session over and
        take a dead owner's at once), re-save sessions whose last save failed, and extend the
        records of this node's sessions so they live as long as the sessions do."""
        client = self._redis()
        ttl_ms = int(records.NODE_ALIVE_TTL * 1000)
        loop = asyncio.get_running_loop()
        refresh_every = max(records.NODE_ALIVE_TTL,
                            self.config.session_ttl * records.REFRESH_FRACTION)
        next_refresh = loop.time() + refresh_every
        while True:
            try:
                await client.set(self._alive_key, b"1", px=ttl_ms)
                if loop.time() >= next_refresh:
                    next_refresh = loop.time() + refresh_every
                    await self._refresh(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.bus.redis_trouble(exc, "alive")
            else:
                self.bus.redis_ok()
                for session in self.server.relio_registry:
                    state = session.host_state
                    if state is not None and state.save_failed and not session.ended:
                        spawn(self.save(session))
            await asyncio.sleep(records.NODE_ALIVE_TTL / 3)

    async def _refresh(self, client) -> None:
        """Extend the lifetime of every record this node owns (an idle or long-connected
        session is not saved for a while; its record must not expire under it)."""
        keys = [self._record_key(s.sid) for s in self.server.relio_registry]
        if not keys:
            return
        pipe = client.pipeline(transaction=False)
        ttl = self._record_ttl_ms()
        for key in keys:
            pipe.pexpire(key, ttl)
        await pipe.execute()
        self.stats["refreshed"] += len(keys)

    # --- moving ----------------------------------------------------------------------------------
    async def hand_over(self, session: ServerSession) -> None:
        """Another node has the session's client: give it the session (running handlers first,
        bounded), then drop it here without ending it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDOVER_HANDLER_WAIT
        channel = session.channel
        while (channel.runner.active or channel.engine.stats["peer_requests_pending"]) \
                and loop.time() < deadline and not session.ended:
            await asyncio.sleep(0.01)
        if session.ended or self.server.relio_registry.get(session.sid) is not session:
            return
        state = self._state_of(session, whole=True)
        self.server.relio_release(session, None)
        if await self.save(session, release=True, state=state):
            self.stats["handed_over"] += 1
            self._log().info("relio: session %s handed over", session.sid)

    def hand_over_sid(self, sid: Any) -> None:
        """A node asked (over the bus) for session ``sid``: hand it over if it is here."""
        session = self.server.relio_registry.get(sid)
        if session is not None:
            spawn(self.hand_over(session))

    async def claim(self, sid: str, namespace: str, eio_sid: str, credential) -> str | None:
        """Take the session ``sid`` over from the node that has it (asking a live owner to hand it
        over, taking a dead or silent owner's last saved state) and register it on this server.
        Returns None when the session is now local, else why not."""
        refused = UNKNOWN_SESSION
        bus = self.bus
        if not isinstance(credential, str) or not bus.reading:
            return refused
        client = self._redis()
        assert self._scripts is not None
        claim = self._scripts[1]
        key = self._record_key(sid)
        if not bus.reader_ready.is_set():
            # The bus position this node has applied must be known before a snapshot is caught
            # up from it.
            try:
                await asyncio.wait_for(bus.reader_ready.wait(), HANDOVER_TIMEOUT)
            except asyncio.TimeoutError:
                return "the session store is unavailable"
        wanted = records.credential_hash(credential)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDOVER_TIMEOUT
        asked = False
        try:
            while True:
                force = loop.time() >= deadline
                reply = await claim(keys=[key], args=[wanted, bus.host_id, 1 if force else 0])
                kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
                if kind == "ok":
                    if force:
                        self.stats["forced"] += 1
                    break
                if kind != "owned":
                    return refused if kind != "ended" else "the session ended"
                owner = reply[1].decode() if isinstance(reply[1], bytes) else reply[1]
                if not await client.exists(f"relio:{bus.channel}:node:{owner}"):
                    deadline = loop.time()             # the owner is dead: take it now
                    continue
                if not asked:
                    asked = True
                    await bus.relay({"k": HANDOVER, "h": bus.host_id, "to": owner,
                                     "sid": sid, "ns": namespace})
                await asyncio.sleep(0.02)
            epoch = int(reply[1])
            meta, snapshot = records.unpack_state(reply[2])
            held = records.message_records(reply)
            async with bus.apply_lock:
                replay = await self._entries_for(sid, namespace, meta)
                session = self.server.relio_adopt(sid, namespace, eio_sid, credential, meta,
                                                  snapshot, held)
                session.host_state = _RecordState(epoch, set(held))
                for _entry_id, fields in replay:
                    await self._replay(session, fields)
                running = [(bytes.fromhex(m), base64.b64decode(p), bool(r))
                           for m, p, r in meta.get("running") or ()]
                if running and isinstance(session.channel, DurableChannel):
                    # Handlers the previous owner had not finished when it stopped: run here.
                    session.channel.redeliver(running)
        except asyncio.CancelledError:
            raise
        except (ValueError, KeyError) as exc:
            self._log().warning("relio: session %s: unreadable record: %s", sid, exc)
            return refused
        except RemoteProtocolError as exc:
            self._log().warning("relio: session %s: cannot restore: %s", sid, exc.reason)
            return refused
        except Exception as exc:
            bus.redis_trouble(exc, "claim session")
            return "the session store is unavailable"
        self.stats["claimed"] += 1
        self.stats["replayed"] += len(replay)
        self._log().info("relio: session %s taken over (epoch %d, %d bus entries replayed)", sid,
                         epoch, len(replay))
        return None

    async def _entries_for(self, sid: str, namespace: str, meta: dict) -> list:
        """The bus entries after the snapshot's position, up to what this node has applied, that
        may concern the session (read a page at a time; only those are kept)."""
        start, end = (meta.get("bus") or "0-0").encode(), self.bus.applied_id
        rooms = {sid, *[r for r in meta.get("rooms") or () if isinstance(r, str)]}
        kept = []
        while id_tuple(end) > id_tuple(start):
            page = await self.bus.read_range(start, end)
            if not page:
                break
            for entry_id, fields in page:
                header = stdlib_json.loads(fields[b"h"])
                if (header.get("ns") or "/") != namespace:
                    continue
                kind, room = header.get("k"), header.get("r")
                if kind == ENTER_ROOM and header.get("sid") == sid:
                    rooms.add(room)
                if kind == EMIT and room is not None:
                    targets = room if isinstance(room, list) else [room]
                    if not any(r in rooms for r in targets):
                        continue          # (a room it enters later is added before its emits)
                elif kind not in SESSION_ENTRY_KINDS:
                    continue
                kept.append((entry_id, fields))
            start = page[-1][0]
        return kept
