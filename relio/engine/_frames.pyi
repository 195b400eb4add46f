"""relio's wire format (compiled from ext/relio/engine/_frames.pyx); see docs/PROTOCOL.md."""

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool

VERSION: int
DATA: int
ACK: int
CLOSE: int
REQUEST: int
RESPONSE: int
CHUNK: int

class DataFrame:
    flags: int
    seq: int
    msg_id: bytes
    reply_to: bytes | None
    total: int
    offset: int
    payload: bytes
    def __init__(self, flags: int, seq: int, msg_id: bytes, reply_to: bytes | None, total: int,
                 offset: int, payload: bytes) -> None: ...

class AckFrame:
    cumulative: int
    ack_delay_us: int
    ranges: list[tuple[int, int]]
    def __init__(self, cumulative: int, ack_delay_us: int,
                 ranges: list[tuple[int, int]]) -> None: ...

class CloseFrame:
    code: int
    reason: str
    def __init__(self, code: int, reason: str) -> None: ...

def check_batch_header(data: bytes, max_batch_size: int) -> None: ...
def decode_batch(data: bytes, *, max_batch_size: int = ..., max_frames: int = ...,
                 max_ranges: int = ...) -> list[DataFrame | AckFrame | CloseFrame]:
    """Decode a whole batch; raise RemoteProtocolError if anything is wrong."""
def encode_data(seq: int, msg_id: bytes, payload: bytes, *, flags: int = ...,
                reply_to: bytes | None = ..., total: int = ..., offset: int = ...) -> bytes: ...
def encode_ack(cumulative: int, ranges: object = ..., ack_delay_us: int = ...) -> bytes: ...
def encode_close(code: int, reason: str) -> bytes: ...
def encode_batch(frames: list[bytes]) -> bytes: ...
