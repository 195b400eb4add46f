"""Smoke test of the end-to-end benchmark runner (``python -m bench.e2e``).

Runs the real runner as a subprocess at a tiny scale for three workloads (real server and client
processes on 127.0.0.1, both libraries) and checks what it writes: machine info, both libraries'
figures, ratios that match them, the relio-only properties (every delivery confirmed, the big
upload that python-socketio's default limits refuse) and the printed table. matplotlib is hidden
from the runner (a shadow package that raises ImportError) to prove the PNG is optional; the PNG
itself is then drawn in-process from the same JSON.

A second run (``options_run``) takes the room fan-out, the download and the server-to-client emits
with the optional speedups (``--loop uvloop --json orjson``) and checks the counts (every message
to every room member, no duplicate), the CPU-per-message figures, the recorded options and the
separate result files. No timing is asserted anywhere: only that figures exist and are consistent.
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
OPTION_WORKLOADS = ('emit_s2c', 'fanout_100', 'big_50MiB_down')


def _run_runner(tmp, args: list[str], stem: str, timeout: float, hide_matplotlib: bool):
    out = tmp / 'out'
    env = dict(os.environ)
    path = [REPO]
    if hide_matplotlib:
        shadow = tmp / 'shadow' / 'matplotlib'
        shadow.mkdir(parents=True)
        (shadow / '__init__.py').write_text("raise ImportError('matplotlib hidden by the test')\n")
        path.insert(0, str(shadow.parent))
    env['PYTHONPATH'] = os.pathsep.join(path)
    proc = subprocess.run(
        [sys.executable, '-m', 'bench.e2e', '--scale', str(SCALE), '--out', str(out), *args],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout)
    js = out / f'{stem}.json'
    data = json.loads(js.read_text()) if js.exists() else None
    return proc, out, data


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return _run_runner(tmp_path_factory.mktemp('e2e'), ['--only', ','.join(WORKLOADS)], 'e2e',
                       100, True)


@pytest.fixture(scope='module')
def options_run(tmp_path_factory):
    return _run_runner(tmp_path_factory.mktemp('e2e-opts'),
                       ['--only', ','.join(OPTION_WORKLOADS), '--loop', 'uvloop',
                        '--json', 'orjson', '--no-png'], 'e2e-uvloop-orjson', 200, False)


def _finite_positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _check_cpu(r: dict, count: int) -> None:
    """Both processes' CPU time of the measured phase, and the same per message (µs)."""
    for side in ('server', 'client'):
        assert _finite_positive(r[f'{side}_cpu_s']), (side, r)
        assert r[f'{side}_cpu_us'] == pytest.approx(r[f'{side}_cpu_s'] / count * 1e6)


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
    assert data['args']['options'] == {'loop': 'asyncio', 'json': 'stdlib'}
    # the Markdown table for the README, with the machine and versions under it
    md = (out / 'e2e.md').read_text()
    assert md.startswith('| workload |') and 'relio CPU µs srv/cli' in md
    assert f"python-socketio {m['versions']['python-socketio']}" in md
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
        _check_cpu(r, n)
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
        _check_cpu(r, r['n'])
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


@pytest.mark.timeout(220)
def test_options_run_records_its_options_in_separate_files(options_run):
    proc, out, data = options_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert data is not None
    assert data['args']['options'] == {'loop': 'uvloop', 'json': 'orjson'}
    assert data['machine']['versions']['uvloop'] and data['machine']['versions']['orjson']
    assert not (out / 'e2e.json').exists()          # the default run's results are kept apart
    assert (out / 'e2e-uvloop-orjson.md').exists()
    assert 'loop uvloop, json orjson' in proc.stdout
    assert list(data['workloads']) == list(OPTION_WORKLOADS)


@pytest.mark.timeout(220)
def test_fanout_delivers_every_message_to_every_member_once(options_run):
    _, _, data = options_run
    from bench.e2e.workloads import params

    p = params('fanout_100', SCALE)
    fan = data['workloads']['fanout_100']
    for lib in ('socketio', 'relio'):
        r = fan['results'][lib]
        assert r['ok'], r
        assert r['clients'] == 100 and r['client_procs'] == p['procs'] and r['n'] == p['n']
        assert r['deliveries'] == 100 * p['n'] and r['dups'] == 0
        assert r['deliveries_per_s'] == pytest.approx(r['deliveries'] / r['elapsed_s'])
        _check_cpu(r, r['deliveries'])
    assert fan['results']['relio']['deliveries_confirmed'] is True
    assert fan['ratio'] == pytest.approx(fan['results']['relio']['deliveries_per_s']
                                         / fan['results']['socketio']['deliveries_per_s'])


@pytest.mark.timeout(220)
def test_download_and_s2c_complete_with_the_speedups(options_run):
    _, _, data = options_run
    from bench.e2e.workloads import params

    down = data['workloads']['big_50MiB_down']
    p = params('big_50MiB_down', SCALE)
    for lib in ('socketio', 'relio'):
        r = down['results'][lib]
        assert r['ok'], r
        assert r['size'] == p['size'] and len(r['seconds']) == r['reps'] == p['reps']
        assert r['mb_per_s'] == pytest.approx(p['size'] / r['median_s'] / 1e6)
    s2c = data['workloads']['emit_s2c']
    n = params('emit_s2c', SCALE)['n']
    for lib in ('socketio', 'relio'):
        r = s2c['results'][lib]
        assert r['ok'], r
        assert r['n'] == r['unique'] == n and r['dups'] == 0
        _check_cpu(r, n)
    assert s2c['results']['relio']['deliveries_confirmed'] is True


def test_speedups_table_from_results():
    """``--speedups`` results: the report shows each library's figure with the defaults and with
    the speedups, the gain, and relio's CPU per message both ways (no run needed)."""
    from bench.e2e import report

    def res(rate, srv, cli):
        return {'ok': True, 'n': 100, 'msgs_per_s': rate, 'server_cpu_us': srv,
                'client_cpu_us': cli, 'server_cpu_s': srv * 1e-4, 'client_cpu_s': cli * 1e-4}

    def entry(a, b):
        e = {'name': 'emit_c2s', 'results': {'socketio': a, 'relio': b}}
        e['ratio'] = report.ratio(e)
        return e

    data = {'machine': {'cpu_count': 2, 'versions': {'relio': '0.1.0'}},
            'args': {'scale': 1.0, 'options': {'loop': 'asyncio', 'json': 'stdlib'}},
            'workloads': {'emit_c2s': entry(res(1000.0, 100.0, 50.0), res(10000.0, 12.0, 11.0))},
            'speedups': {'options': {'loop': 'uvloop', 'json': 'orjson'},
                         'workloads': {'emit_c2s': entry(res(1500.0, 80.0, 40.0),
                                                         res(20000.0, 6.0, 5.5))}}}
    text = report.table(data)
    row = next(line for line in text.splitlines()[text.splitlines().index(
        'optional speedups, measured right after the defaults in the same run:'):]
        if line.startswith('emit_c2s'))
    cells = [c.strip() for c in row.split('|')]
    assert cells[2:9] == ['1,000', '1,500', '1.50x', '10,000', '20,000', '2.00x', '13.33x']
    assert cells[9:] == ['12.0 / 11.0', '6.00 / 5.50']
    md = report.markdown(data)
    assert '| relio +uvloop+orjson |' in md and 'loop asyncio, json stdlib' in md


@pytest.fixture(scope='module')
def speedups_run(tmp_path_factory):
    return _run_runner(tmp_path_factory.mktemp('e2e-speedups'),
                       ['--only', 'emit_c2s,big_200MiB', '--speedups', '--no-png'], 'e2e-speedups',
                       120,
                       False)


@pytest.mark.timeout(150)
def test_speedups_run_measures_both_in_one_file(speedups_run):
    """``--speedups``: the defaults as usual, the throughput workloads again with uvloop and
    orjson in ``speedups`` of the same file (not the default-limits case), every count right."""
    proc, out, data = speedups_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from bench.e2e.workloads import params

    assert data['args']['options'] == {'loop': 'asyncio', 'json': 'stdlib'}
    sp = data['speedups']
    assert sp['options'] == {'loop': 'uvloop', 'json': 'orjson'}
    assert list(sp['workloads']) == ['emit_c2s']
    n = params('emit_c2s', SCALE)['n']
    for entry in (data['workloads']['emit_c2s'], sp['workloads']['emit_c2s']):
        for lib in ('socketio', 'relio'):
            r = entry['results'][lib]
            assert r['ok'], r
            assert r['n'] == n and r['dups'] == 0
            _check_cpu(r, n)
    assert 'optional speedups, measured right after the defaults' in proc.stdout
    assert 'relio +uvloop+orjson' in (out / 'e2e-speedups.md').read_text()
    assert not (out / 'e2e.json').exists()       # the default run's files are left alone
