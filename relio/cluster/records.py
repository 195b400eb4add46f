"""Session records in Redis: what moves when a relio session changes server node.

One hash per session, ``relio:<channel>:s:<sid>``, owned by one node at a time:

``epoch``
    Incremented by every claim. A node writes the record only with the epoch it claimed (or
    created) it with, so a node that was paused while its session moved cannot overwrite it
    (fencing): its write fails and it drops its stale copy.
``owner``
    The ``host_id`` of the node holding the session, or empty once released (handed over).
``state``
    :func:`pack_state`: the engine snapshot plus what the socket.io layer keeps (namespace, rooms,
    the application's session dict, the bus position the snapshot includes). The snapshot names
    the unacknowledged messages by id (``Engine.snapshot_apart``); their records are the
    ``m:<id>`` fields.
``m:<id>`` (16 raw bytes of message id)
    One field per unacknowledged message of the session: its record (flags, what it answers,
    payload), written by the first save that includes the message and deleted by the first one
    after its acknowledgement. A message does not change while it waits, so a save writes the
    state and only the records that are new since the last save, not the whole outbox again
    (durable mode saves before every outgoing batch). Written in the same script as ``state``,
    fenced by the same epoch: a save is all or nothing, and a takeover reads ``state`` with
    exactly the records it names.
``cred`` / ``prev``
    SHA-256 of the resume credential (and of the one it replaced, still valid until the client
    uses the new one): any node can check a resume without the secrets being stored.
``ended``
    Set (instead of deleting the record) when the session ends, so that a stale node cannot bring
    it back; the record then expires.

Every record expires ``session_ttl`` after its last write plus :data:`RECORD_TTL_MARGIN`; a node
rewrites the records it owns well before that (:data:`REFRESH_FRACTION`).
"""

from __future__ import annotations

import hashlib
import json
import struct

#: Seconds a record outlives its session's TTL (clock skew between nodes and Redis).
RECORD_TTL_MARGIN = 30
#: Owned records are refreshed every ``session_ttl * REFRESH_FRACTION`` seconds.
REFRESH_FRACTION = 0.25
#: Seconds a node's liveness key lives without being refreshed (refreshed every third of it): how
#: long a session of a killed node waits before another node takes it over.
NODE_ALIVE_TTL = 1.5

_META_LEN = struct.Struct(">I")

#: KEYS[1] record. ARGV: epoch, owner, state, cred, prev, ttl_ms, release (0/1), the message
#: records to write (packed by ``Engine.snapshot_apart``: for each, its 16-byte id, a 4-byte
#: big-endian length, the record), the ids of the records to delete (16 bytes each, one after
#: the other). Each packed in one argument: redis-py builds a command in Python, argument by
#: argument, and an argument per message cost more than the whole snapshots it replaces.
#: Writes only if the record does not exist (a new session, epoch 1) or this node owns it with this
#: epoch (not released, not ended). Returns 1, or 0 when fenced off (nothing written).
SAVE_SCRIPT = """
local cur = redis.call('HMGET', KEYS[1], 'epoch', 'ended', 'owner')
if cur[2] then return 0 end
if cur[1] then
  if tonumber(cur[1]) ~= tonumber(ARGV[1]) or cur[3] ~= ARGV[2] then return 0 end
elseif tonumber(ARGV[1]) ~= 1 then
  return 0
end
local owner = ARGV[2]
if ARGV[7] == '1' then owner = '' end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'owner', owner, 'state', ARGV[3],
           'cred', ARGV[4], 'prev', ARGV[5])
local packed, pos, batch = ARGV[8], 1, {}
while pos + 19 <= #packed do
  local a, b, c, d = string.byte(packed, pos + 16, pos + 19)
  local stop = pos + 19 + ((a * 256 + b) * 256 + c) * 256 + d
  batch[#batch + 1] = 'm:' .. string.sub(packed, pos, pos + 15)
  batch[#batch + 1] = string.sub(packed, pos + 20, stop)
  pos = stop + 1
  if #batch >= 512 then redis.call('HSET', KEYS[1], unpack(batch)); batch = {} end
end
if #batch > 0 then redis.call('HSET', KEYS[1], unpack(batch)) end
local gone = ARGV[9]
batch = {}
for i = 1, #gone - 15, 16 do
  batch[#batch + 1] = 'm:' .. string.sub(gone, i, i + 15)
  if #batch >= 512 then redis.call('HDEL', KEYS[1], unpack(batch)); batch = {} end
end
if #batch > 0 then redis.call('HDEL', KEYS[1], unpack(batch)) end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"""

#: KEYS[1] record. ARGV: credential hash, claiming node, force (0/1).
#: Returns {'ok', epoch, state, cred, prev, id, record, id, record...} (every message record),
#: {'owned', owner}, {'none'}, {'ended', reason} or {'denied'} (wrong credential: the epoch is not
#: touched, so guessing cannot disturb a session).
CLAIM_SCRIPT = """
local r = redis.call('HMGET', KEYS[1], 'epoch', 'owner', 'state', 'cred', 'prev', 'ended')
if not r[1] then return {'none'} end
if r[6] then return {'ended', r[6]} end
if ARGV[1] ~= r[4] and ARGV[1] ~= r[5] then return {'denied'} end
if r[2] ~= '' and r[2] ~= ARGV[2] and ARGV[3] ~= '1' then return {'owned', r[2]} end
local epoch = tonumber(r[1]) + 1
redis.call('HSET', KEYS[1], 'epoch', epoch, 'owner', ARGV[2])
local reply = {'ok', tostring(epoch), r[3], r[4], r[5]}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'm:' then
    reply[#reply + 1] = string.sub(all[i], 3)
    reply[#reply + 1] = all[i + 1]
  end
end
return reply
"""

#: KEYS[1] record. ARGV: epoch, reason, ttl_ms. Marks the session ended if this epoch owns it
#: (its state and message records go).
END_SCRIPT = """
local cur = redis.call('HGET', KEYS[1], 'epoch')
if not cur or tonumber(cur) ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'epoch', cur, 'ended', ARGV[2], 'owner', '')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def message_records(reply: list) -> dict[bytes, bytes]:
    """The message records of a :data:`CLAIM_SCRIPT` reply, by message id."""
    it = iter(reply[5:])
    return dict(zip(it, it, strict=True))


def credential_hash(credential: str | None) -> str:
    """What the record stores of a credential (never the credential itself)."""
    if not credential:
        return ""
    return hashlib.sha256(credential.encode()).hexdigest()


def pack_state(meta: dict, snapshot: bytes) -> bytes:
    """The record's ``state``: a 4-byte length, the metadata as JSON, the engine snapshot."""
    encoded = json.dumps(meta, separators=(",", ":")).encode()
    return _META_LEN.pack(len(encoded)) + encoded + snapshot


def unpack_state(state: bytes) -> tuple[dict, bytes]:
    """Inverse of :func:`pack_state`. :raises ValueError: not a state this module wrote."""
    if len(state) < _META_LEN.size:
        raise ValueError("session record: truncated")
    (length,) = _META_LEN.unpack_from(state)
    end = _META_LEN.size + length
    if end > len(state):
        raise ValueError("session record: metadata length past the end")
    meta = json.loads(state[_META_LEN.size:end])
    if not isinstance(meta, dict):
        raise ValueError("session record: metadata is not an object")
    return meta, state[end:]
