"""relio-client's TypeScript engine (js/src/engine.ts, in a Node.js subprocess:
js/test/pipe-peer.mjs) joined to the Python reference engine (``relio.Engine``) over a scripted
link that drops, duplicates and reorders batches and is cut and resumed: both directions deliver
every message exactly once and in order, chunked messages included, and every request is answered
once. The two implementations must agree on everything the wire carries for this to hold (the
byte-level agreement itself is checked by tests/test_js_vectors.py and js/test/vectors.test.mjs)."""
from __future__ import annotations

import base64
import json
import random
import subprocess

import pytest

from relio.engine._engine import Engine
from relio.engine._events import MessageReceived, MessagesDelivered, ResponseReceived
from tests.support.jsclient import JS_DIR, build_js_client


class TsPeer:
    def __init__(self, node: str):
        self.proc = subprocess.Popen([node, str(JS_DIR / 'test' / 'pipe-peer.mjs')], cwd=JS_DIR,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, op: str, **fields) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({'op': op, **fields}) + '\n')
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        assert 'error' not in answer, answer['error']
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_ts_engine_and_python_engine_over_a_lossy_link(seed):
    node = build_js_client()
    rng = random.Random(seed)
    ts = TsPeer(node)
    try:
        now = 0.0
        ts('init', now=now)
        py = Engine(now=now)
        n = 150
        big = bytes(range(256)) * 700                       # 179 200 bytes: 3 chunks
        to_ts = [b'%d' % i + (big if i % 37 == 5 else b'') for i in range(n)]
        to_py = [b'ts%d' % i + (big if i % 41 == 9 else b'') for i in range(n)]
        got_ts: list[bytes] = []                 # what the TS engine received
        got_py: list[bytes] = []
        responses_py: list[bytes] = []           # TS answers to Python's requests
        responses_ts: list[bytes] = []
        delivered = {'py': 0, 'ts': 0}

        def ts_events(answer: dict) -> None:
            for e in answer['events']:
                if e['kind'] == 'received':
                    got_ts.append(unb64(e['payload']))
                elif e['kind'] == 'response':
                    responses_ts.append(unb64(e['payload']))
                elif e['kind'] == 'delivered':
                    delivered['ts'] += e['count']
                else:
                    raise AssertionError(e)

        def py_events() -> None:
            for e in py.events():
                if isinstance(e, MessageReceived):
                    got_py.append(e.payload)
                    if e.request:
                        py.reply(e.msg_id, b'py:' + e.payload, now)
                elif isinstance(e, ResponseReceived):
                    responses_py.append(e.payload)
                elif isinstance(e, MessagesDelivered):
                    delivered['py'] += len(e.msg_ids)
                else:
                    raise AssertionError(e)

        def link(batches: list[bytes], deliver, lossy: bool) -> None:
            late = []
            for batch in batches:
                if lossy and rng.random() < 0.12:
                    continue
                for _ in range(2 if lossy and rng.random() < 0.05 else 1):
                    if lossy and rng.random() < 0.2:
                        late.append(batch)
                    else:
                        deliver(batch)
            for batch in reversed(late):
                deliver(batch)

        def step(lossy: bool) -> None:
            nonlocal now
            answer = ts('output', now=now)
            out_ts = [unb64(b) for b in answer['batches']]
            ts_events(answer)
            if (t := py.get_timer()) is not None and t <= now:
                py.handle_timer(now)
            out_py = py.data_to_send(now)
            py_events()
            link(out_py, lambda b: ts_events(ts('receive', batch=b64(b), now=now)), lossy)
            link(out_ts, lambda b: (py.receive(b, now), py_events()), lossy)
            now += 0.01

        def cut_and_resume() -> None:
            py.disconnect(now)
            ts_state = unb64(ts('disconnect', now=now)['state'])
            py_state = py.resume_state()
            py.resume(ts_state, now)
            py_events()
            ts_events(ts('resume', state=b64(py_state), now=now))

        for i in range(n):
            py.send(to_ts[i], now, request=i % 10 == 0)
            ts_events(ts('send', payload=b64(to_py[i]), request=i % 12 == 0, now=now))
            if i % 10 == 9:
                step(True)
            if i % 50 == 25:
                cut_and_resume()
        expected_py = n + (n + 11) // 12           # Python's messages and its replies to TS
        expected_ts = n + (n + 9) // 10
        for round_ in range(3000):
            if delivered['py'] >= expected_py and delivered['ts'] >= expected_ts:
                break
            step(round_ < 150)
            if round_ % 120 == 119:
                cut_and_resume()
        assert got_ts == to_ts, 'Python -> TS: lost, duplicated or reordered'
        assert got_py == to_py, 'TS -> Python: lost, duplicated or reordered'
        assert responses_py == [b're:' + to_ts[i] for i in range(0, n, 10)]
        assert responses_ts == [b'py:' + to_py[i] for i in range(0, n, 12)]
        assert delivered == {'py': expected_py, 'ts': expected_ts}
    finally:
        ts.close()
