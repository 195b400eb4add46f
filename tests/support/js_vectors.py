"""Shared test vectors for relio-client (js/): generated from the Python reference (the compiled
codec ``relio.engine._frames``, ``relio.Engine`` and ``relio.binding.payload``) and checked by
js/test/vectors.test.mjs. tests/test_js_vectors.py fails when js/test/vectors.json differs from
what this module generates, so the two implementations cannot drift apart unnoticed.

    python -m tests.support.js_vectors      # rewrite js/test/vectors.json
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from relio.binding import payload
from relio.engine import _frames as F
from relio.engine._engine import Engine
from relio.engine.errors import RemoteProtocolError

VECTORS = Path(__file__).resolve().parents[2] / 'js' / 'test' / 'vectors.json'
PREFIX_A = bytes.fromhex('a1b2c3d4e5f60718')
PREFIX_B = bytes.fromhex('0102030405060708')


def _id(prefix: bytes, n: int) -> bytes:
    return prefix + n.to_bytes(8, 'big')


def _error(data: bytes) -> str:
    try:
        F.decode_batch(data)
    except RemoteProtocolError as exc:
        return exc.reason
    raise AssertionError(f'{data.hex()} decoded')


def _events(engine: Engine) -> list[dict[str, Any]]:
    out = []
    for e in engine.events():
        kind = type(e).__name__
        item: dict[str, Any] = {'kind': kind}
        for name in ('msg_id', 'reply_to', 'payload', 'request', 'reason', 'msg_ids'):
            value = getattr(e, name, None)
            if isinstance(value, bytes):
                value = value.hex()
            elif isinstance(value, (list, tuple)):
                value = [v.hex() for v in value]
            if value is not None:
                item[name] = value
        out.append(item)
    return out


def generate() -> dict[str, Any]:
    varints = [0, 1, 37, 63, 64, 1200, 15293, 16383, 16384, 494878333, 1073741823, 1073741824,
               2**53 - 1]
    data = [
        dict(seq=0, msg_id=_id(PREFIX_A, 0), payload=b'', flags=0),
        dict(seq=300, msg_id=_id(PREFIX_A, 300), payload=b'ping', flags=F.REQUEST),
        dict(seq=301, msg_id=_id(PREFIX_A, 301), payload=b'ok', flags=F.RESPONSE,
             reply_to=_id(PREFIX_B, 7)),
        dict(seq=16384, msg_id=_id(PREFIX_A, 5), payload=b'x' * 70, flags=F.RESPONSE | F.REQUEST,
             reply_to=_id(PREFIX_B, 9)),
        dict(seq=301, msg_id=_id(PREFIX_A, 2), payload=b'\x00' * 5, flags=F.REQUEST | F.CHUNK,
             total=150000, offset=65536),
    ]
    acks = [(0, [], 0), (2, [(4, 6)], 1200), (10, [(12, 15), (20, 21)], 0),
            (1000, [(1001 + 3 * i, 1002 + 3 * i) for i in range(32)], 70000)]
    closes = [(0, 'session closed'), (1, 'protocol error: empty chunk'), (77, 'é' * 200)]
    worked = F.encode_batch([
        F.encode_ack(2, [(4, 6)], ack_delay_us=1200),
        F.encode_data(300, _id(PREFIX_A, 300), b'ping', flags=F.REQUEST),
        F.encode_data(301, _id(PREFIX_A, 301), b'ok', flags=F.RESPONSE, reply_to=_id(PREFIX_B, 7)),
    ])
    invalid = [b'', b'\x01', b'\x02\x02\x00\x00\x00', b'\x01\x09', b'\x01\x01\x08',
               b'\x01\x01\x00\x40', b'\x01\x01\x00\x00' + b'\x00' * 10,
               b'\x01\x01\x04\x00' + b'\x00' * 16 + b'\x00\x00\x01\x00',
               b'\x01\x01\x04\x00' + b'\x00' * 16 + b'\x05\x00\x00',
               b'\x01\x01\x04\x00' + b'\x00' * 16 + b'\x05\x04\x02ab',
               b'\x01\x02\x00\x00\x21', b'\x01\x02\x00\x00\x01\x00\x01',
               b'\x01\x02\x00\x00\x01\x01\x00', b'\x01\x03\x00\x41\x01',
               b'\x01\x03\x00\x05ab', b'\x01\x01\x00\x00' + b'\x00' * 16 + b'\x05ab']

    # Sender: what an engine with a fixed id prefix sends for a given sequence of messages.
    sender = Engine(id_prefix=PREFIX_A, now=0.0)
    sender.send(b'\x00["hello",1]', 0.0)
    sender.send(b'\x00["ask",2]', 0.0, request=True)
    sender.send(bytes(range(256)) * 600, 0.0)            # 153 600 bytes: 3 chunks
    sender.send(b'\x00["after"]', 0.0)
    sent = [b.hex() for b in sender.data_to_send(0.0)]

    # Receiver: the batches above reordered and with a gap; its events and resume states.
    receiver = Engine(id_prefix=PREFIX_B, now=0.0)
    frames = F.decode_batch(bytes.fromhex(sent[0]))
    steps = []
    pieces = [F.encode_data(f.seq, f.msg_id, f.payload, flags=f.flags,
                            reply_to=f.reply_to, total=f.total, offset=f.offset)
              for f in frames if isinstance(f, F.DataFrame)]
    for b in sent[1:]:
        for f in F.decode_batch(bytes.fromhex(b)):
            pieces.append(F.encode_data(f.seq, f.msg_id, f.payload, flags=f.flags,
                                        reply_to=f.reply_to, total=f.total, offset=f.offset))
    order = [1, 3, 0, 5, 2, 4]
    for i in order:
        batch = F.encode_batch([pieces[i]])
        receiver.receive(batch, 0.001)
        steps.append({'batch': batch.hex(), 'events': _events(receiver),
                      'resume_state': receiver.resume_state().hex()})
    reply_id = receiver.reply(_id(PREFIX_A, 1), b'\x00[4]', 0.002)
    answer = [b.hex() for b in receiver.data_to_send(0.002)]

    payloads = [
        ['hello', 1, 'two', {'a': [1, 2, None, True]}],
        ['bin', b'\x00\x01\x02', {'nested': [b'', b'xyz']}],
        [],
        [{'_placeholder': False, 'num': 0}],
    ]
    return {
        'varints': [{'value': v, 'hex': F.encode_ack(v)[1:-2].hex()} for v in varints],
        'data': [{**{k: (v.hex() if isinstance(v, bytes) else v) for k, v in d.items()},
                  'hex': F.encode_data(d['seq'], d['msg_id'], d['payload'], flags=d['flags'],
                                       reply_to=d.get('reply_to'), total=d.get('total', 0),
                                       offset=d.get('offset', 0)).hex()} for d in data],
        'acks': [{'cumulative': c, 'ranges': r, 'ack_delay_us': d,
                  'hex': F.encode_ack(c, r, ack_delay_us=d).hex()} for c, r, d in acks],
        'closes': [{'code': c, 'reason': r, 'hex': F.encode_close(c, r).hex()} for c, r in closes],
        'worked_example': worked.hex(),
        'invalid': [{'hex': b.hex(), 'reason': _error(b)} for b in invalid],
        'sender': {'id_prefix': PREFIX_A.hex(), 'batches': sent},
        'receiver': {'id_prefix': PREFIX_B.hex(), 'steps': steps, 'reply_id': reply_id.hex(),
                     'answer': answer},
        'payloads': [{'hex': payload.encode(p).hex(),
                      'items': json.loads(json.dumps(p, default=lambda b: {'$bin': b.hex()}))}
                     for p in payloads],
        'failure': payload.encode_failure('too big').hex(),
    }


def render() -> str:
    return json.dumps(generate(), indent=1, sort_keys=True) + '\n'


if __name__ == '__main__':
    VECTORS.write_text(render())
