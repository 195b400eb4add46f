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
    the application's session dict, the bus position the snapshot includes).
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

#: KEYS[1] record. ARGV: epoch, owner, state, cred, prev, ttl_ms, release (0/1).
#: Writes only if the record does not exist (a new session, epoch 1) or this node owns it with this
#: epoch (not released, not ended). Returns 1, or 0 when fenced off.
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
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"""

#: KEYS[1] record. ARGV: credential hash, claiming node, force (0/1).
#: Returns {'ok', epoch, state, cred, prev}, {'owned', owner}, {'none'}, {'ended', reason} or
#: {'denied'} (wrong credential: the epoch is not touched, so guessing cannot disturb a session).
CLAIM_SCRIPT = """
local r = redis.call('HMGET', KEYS[1], 'epoch', 'owner', 'state', 'cred', 'prev', 'ended')
if not r[1] then return {'none'} end
if r[6] then return {'ended', r[6]} end
if ARGV[1] ~= r[4] and ARGV[1] ~= r[5] then return {'denied'} end
if r[2] ~= '' and r[2] ~= ARGV[2] and ARGV[3] ~= '1' then return {'owned', r[2]} end
local epoch = tonumber(r[1]) + 1
redis.call('HSET', KEYS[1], 'epoch', epoch, 'owner', ARGV[2])
return {'ok', tostring(epoch), r[3], r[4], r[5]}
"""

#: KEYS[1] record. ARGV: epoch, reason, ttl_ms. Marks the session ended if this epoch owns it.
END_SCRIPT = """
local cur = redis.call('HGET', KEYS[1], 'epoch')
if not cur or tonumber(cur) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ended', ARGV[2], 'owner', '')
redis.call('HDEL', KEYS[1], 'state')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


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
