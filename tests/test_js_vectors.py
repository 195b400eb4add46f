"""js/test/vectors.json, the shared test vectors relio-client's tests check the TypeScript codec
and engine against (js/test/vectors.test.mjs, run by tests/test_js_client.py), is exactly what
the Python reference generates now (tests/support/js_vectors.py): a change on either side that
alters the bytes on the wire fails here or there."""
from __future__ import annotations

from tests.support import js_vectors


def test_vectors_file_matches_the_python_reference():
    assert js_vectors.VECTORS.read_text() == js_vectors.render(), (
        'js/test/vectors.json is stale: regenerate it with `python -m tests.support.js_vectors` '
        'and run the JS tests')


def test_vectors_cover_the_wire_formats():
    vectors = js_vectors.generate()
    assert {'varints', 'data', 'acks', 'closes', 'worked_example', 'invalid', 'sender',
            'receiver', 'payloads', 'failure'} <= set(vectors)
    # the worked example is the 72 bytes of docs/PROTOCOL.md section 11
    assert len(bytes.fromhex(vectors['worked_example'])) == 72
    assert len(vectors['sender']['batches']) >= 2          # chunks spread over several batches
