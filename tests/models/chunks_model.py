"""Pure-Python reference model of relio.engine._chunks: the readable specification of split, Reassembler
and reassemble_into, written the idiomatic way (bytes slicing, a bytearray per message and a list of
received ranges). The compiled module must agree with it on every return value and exception; the
benchmarks use it as the pure-Python baseline.
"""

from __future__ import annotations

from relio.engine.errors import LocalProtocolError, RemoteProtocolError

DEFAULT_CHUNK_SIZE = 65536


def split(payload, chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[bytes]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    payload = bytes(payload)
    return [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)]


def check_chunk(total: int, offset: int, n: int) -> None:
    if n == 0:
        raise RemoteProtocolError("empty chunk")
    if offset < 0:
        raise RemoteProtocolError(f"chunk offset {offset} is negative")
    if offset + n > total:
        raise RemoteProtocolError(
            f"chunk of {n} bytes at offset {offset} overruns the message's {total} bytes"
        )


class Ranges:
    """Received byte ranges [start, stop): sorted, disjoint, adjacent ones merged."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def add(self, start: int, stop: int) -> None:
        kept = []
        for range_start, range_stop in self.ranges:
            if range_stop < start or range_start > stop:
                kept.append((range_start, range_stop))
            else:
                start, stop = min(start, range_start), max(stop, range_stop)
        kept.append((start, stop))
        self.ranges = sorted(kept)

    def covered(self) -> int:
        return sum(stop - start for start, stop in self.ranges)


class Message:
    def __init__(self, total: int) -> None:
        self.total = total
        self.buffer = bytearray(total)
        self.ranges = Ranges()

    def store(self, offset: int, data) -> None:
        data = bytes(data)
        check_chunk(self.total, offset, len(data))
        self.buffer[offset : offset + len(data)] = data
        self.ranges.add(offset, offset + len(data))


class Reassembler:
    def __init__(
        self,
        max_message_size: int = 64 * 1024 * 1024,
        max_reassemblies: int = 64,
        max_bytes: int = 128 * 1024 * 1024,
    ) -> None:
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be at least 1, not {max_message_size}")
        if max_reassemblies < 0:
            raise ValueError(f"max_reassemblies must not be negative, not {max_reassemblies}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, not {max_bytes}")
        self.max_message_size = max_message_size
        self.max_reassemblies = max_reassemblies
        self.max_bytes = max_bytes
        self.messages: dict[bytes, Message] = {}

    @property
    def nbytes(self) -> int:
        return sum(message.total for message in self.messages.values())

    def add(self, msg_id: bytes, total: int, offset: int, data, head_of_line: bool = False) -> bool:
        message = self.messages.get(msg_id)
        if message is not None:
            if total != message.total:
                raise RemoteProtocolError(
                    f"chunk says the message has {total} bytes, an earlier chunk said "
                    f"{message.total}"
                )
            message.store(offset, data)
            return True
        if total > self.max_message_size:
            raise RemoteProtocolError(
                f"message of {total} bytes exceeds max_message_size ({self.max_message_size})"
            )
        if total < 1:
            raise RemoteProtocolError(f"message size {total} is not positive")
        check_chunk(total, offset, len(bytes(data)))
        if not head_of_line and (
            len(self.messages) >= self.max_reassemblies or self.nbytes + total > self.max_bytes
        ):
            return False
        message = Message(total)
        message.store(offset, data)
        self.messages[msg_id] = message
        return True

    def buffer(self, msg_id: bytes) -> bytes | None:
        message = self.messages.get(msg_id)
        return None if message is None else bytes(message.buffer)

    def finish(self, msg_id: bytes) -> bytes:
        message = self.messages.get(msg_id)
        if message is None:
            raise LocalProtocolError(f"no reassembly in progress for message {msg_id!r}")
        received = message.ranges.covered()
        if received < message.total:
            raise RemoteProtocolError(
                f"message ended with {received} of its {message.total} bytes received"
            )
        del self.messages[msg_id]
        return bytes(message.buffer)

    def discard(self, msg_id: bytes) -> None:
        self.messages.pop(msg_id, None)

    def received(self, msg_id: bytes) -> int:
        message = self.messages.get(msg_id)
        return 0 if message is None else message.ranges.covered()

    def message_ids(self) -> list[bytes]:
        return list(self.messages)

    def __len__(self) -> int:
        return len(self.messages)

    def __contains__(self, msg_id) -> bool:
        return msg_id in self.messages


def reassemble_into(out, chunks) -> int:
    out = memoryview(out).cast("B")
    ranges = Ranges()
    for offset, data in chunks:
        data = bytes(data)
        check_chunk(len(out), offset, len(data))
        out[offset : offset + len(data)] = data
        ranges.add(offset, offset + len(data))
    return ranges.covered()
