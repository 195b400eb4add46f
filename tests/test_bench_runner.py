"""Smoke test of the end-to-end benchmark runner (``python -m bench.e2e``).

Runs the real runner as a subprocess at a tiny scale for three workloads (real server and client
processes on 127.0.0.1, both libraries) and checks what it writes: machine info, both libraries'
figures, ratios that match them, the relio-only properties (every delivery confirmed, the big
upload that python-socketio's default limits refuse) and the printed table. matplotlib is hidden
from the runner (a shadow package that raises ImportError) to prove the PNG is optional; the PNG
itself is then drawn in-process from the same JSON.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = 0.02
WORKLOADS = ('emit_c2s', 'call_seq', 'big_200MiB')


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('e2e')
    out = tmp / 'out'
    shadow = tmp / 'shadow' / 'matplotlib'
    shadow.mkdir(parents=True)
    (shadow / '__init__.py').write_text("raise ImportError('matplotlib hidden by the test')\n")
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(shadow.parent), REPO])
    proc = subprocess.run(
        [sys.executable, '-m', 'bench.e2e', '--scale', str(SCALE),
         '--only', ','.join(WORKLOADS), '--out', str(out)],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=100)
    data = json.loads((out / 'e2e.json').read_text()) if (out / 'e2e.json').exists() else None
    return proc, out, data


def _finite_positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


@pytest.mark.timeout(120)
def test_runner_exits_cleanly_and_prints_table(run):
    proc, out, data = run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert data is not None
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.split('|')[0].strip() == 'workload')
    assert 'python-socketio' in header and 'relio/py-sio' in header
    for name in WORKLOADS:
        assert any(line.split('|')[0].strip() == name for line in lines), name
    # the PNG is optional: without matplotlib the runner says so and writes JSON + table only
    assert 'matplotlib is not installed' in proc.stdout
    assert not (out / 'e2e.png').exists()


@pytest.mark.timeout(120)
def test_json_has_machine_info_and_both_libraries(run):
    proc, out, data = run
    assert data is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    m = data['machine']
    assert m['cpu_count'] == os.cpu_count()
    assert m['python'].count('.') == 2
    assert m['versions']['python-socketio'] and m['versions']['relio']
    assert m['timestamp']
    assert data['args']['scale'] == SCALE
    assert list(data['workloads']) == list(WORKLOADS)
    assert data['runtime_s'] > 0
    for name, entry in data['workloads'].items():
        assert set(entry['results']) == {'socketio', 'relio'}, name
        assert sorted(entry['order']) == ['relio', 'socketio']
    # alternating order: the second workload runs relio first
    assert data['workloads']['emit_c2s']['order'] == ['socketio', 'relio']
    assert data['workloads']['call_seq']['order'] == ['relio', 'socketio']


@pytest.mark.timeout(120)
def test_throughput_figures_are_sane(run):
    _, _, data = run
    from bench.e2e.workloads import params

    emit = data['workloads']['emit_c2s']
    n = params('emit_c2s', SCALE)['n']
    for lib in ('socketio', 'relio'):
        r = emit['results'][lib]
        assert r['ok'], r
        assert r['n'] == n
        assert _finite_positive(r['msgs_per_s']) and _finite_positive(r['elapsed_s'])
        assert r['msgs_per_s'] == pytest.approx(n / r['elapsed_s'])
        assert r['msgs_per_s'] < 5_000_000                 # not a clock mix-up
        assert r['dups'] == 0 and r['reordered'] == 0       # one clean loopback connection
    assert emit['results']['relio']['deliveries_confirmed'] is True
    assert emit['ratio'] == pytest.approx(
        emit['results']['relio']['msgs_per_s'] / emit['results']['socketio']['msgs_per_s'])

    calls = data['workloads']['call_seq']
    for lib in ('socketio', 'relio'):
        r = calls['results'][lib]
        assert r['ok'], r
        assert r['n'] == params('call_seq', SCALE)['n']
        assert _finite_positive(r['calls_per_s']) and r['calls_per_s'] < 1_000_000
        assert r['calls_per_s'] == pytest.approx(r['n'] / r['elapsed_s'])
        # sequential calls: none took longer than all of them together (microseconds vs seconds)
        assert 0 < r['p50_us'] <= r['p99_us'] <= r['elapsed_s'] * 1e6
    assert calls['ratio'] == pytest.approx(
        calls['results']['relio']['calls_per_s'] / calls['results']['socketio']['calls_per_s'])


@pytest.mark.timeout(120)
def test_big_upload_only_relio_delivers(run):
    _, _, data = run
    from bench.e2e.workloads import params

    big = data['workloads']['big_200MiB']
    size = params('big_200MiB', SCALE)['size']
    assert size > 1_000_000             # above python-socketio's default max_http_buffer_size
    relio_r, plain = big['results']['relio'], big['results']['socketio']
    assert relio_r['ok'], relio_r
    assert relio_r['size'] == size and _finite_positive(relio_r['mb_per_s'])
    assert not plain['ok'] and plain['expected_failure'] is True
    assert 'upload failed' in plain['error']
    assert big['ratio'] is None


@pytest.mark.timeout(120)
def test_png_drawn_from_the_json(run, tmp_path):
    _, _, data = run
    from bench.e2e import report

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert report.draw_png(data, str(tmp_path)) is None
        return
    path = report.draw_png(data, str(tmp_path))
    assert path == str(tmp_path / 'e2e.png')
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert os.path.getsize(path) > 10_000
