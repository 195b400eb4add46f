"""``python -m relio demo --sync``: a Flask-SocketIO app on Flask-SocketIO, then on relio (its
one-line change), served by werkzeug on 127.0.0.1, through the demo's flaky link (cuts and a stall
past the heartbeat; the proxy's own tests are in test_faultproxy.py). relio's row is clean: nothing
lost, duplicated or reordered either way, every call answered, one session. What Flask-SocketIO
lost is printed, not asserted.
"""

import pytest

from relio.__main__ import build_parser
from relio.demo import flask_demo

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings('ignore:unclosed <socket.socket:ResourceWarning'),
]


def test_sync_demo_relio_row_is_clean(capsys):
    assert flask_demo.main(7, messages=150, duration=3.0) == 0
    out = capsys.readouterr().out
    print(out)
    relio_row = next(line for line in out.splitlines() if line.startswith('relio '))
    assert relio_row.split() == ['relio', '0', '0', '0', '0', '0', '0', '0', 'yes']
    assert 'nothing lost, duplicated or reordered' in out


def test_sync_flag_is_on_the_command_line():
    assert build_parser().parse_args(['demo', '--sync']).sync
