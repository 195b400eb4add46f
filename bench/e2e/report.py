"""Turn the end-to-end results into ``e2e.json``, a text table, a Markdown table (``e2e.md``, for
the README) and ``e2e.png``.

CPU per message: workloads whose results carry ``server_cpu_us`` / ``client_cpu_us`` (µs of CPU
time of that process in the measured phase, per message; per delivery for ``fanout_100``, where
the client figure is all client processes together) get them in the table beside the rate.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

from bench.e2e import LIB_LABELS, LIBS
from bench.e2e.workloads import BY_NAME


def ratio(results: dict) -> float | None:
    """relio / python-socketio of the headline metric (None if either failed)."""
    w = BY_NAME[results['name']]
    vals = [results['results'].get(lib, {}) for lib in LIBS]
    if not all(v.get('ok') for v in vals):
        return None
    a, b = vals[0].get(w.metric), vals[1].get(w.metric)
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or a == 0:
        return None
    return b / a


def _fmt(v: Any) -> str:
    if v is None:
        return '-'
    if isinstance(v, float):
        if math.isnan(v):
            return 'nan'
        a = abs(v)
        if a >= 1000:
            return f'{v:,.0f}'
        if a >= 100:
            return f'{v:.0f}'
        if a >= 10:
            return f'{v:.1f}'
        return f'{v:.2f}'
    if isinstance(v, int):
        return f'{v:,}'
    return str(v)


def value_text(name: str, r: dict) -> str:
    w = BY_NAME[name]
    if not r:
        return 'not run'
    if not r.get('ok'):
        return 'FAILED'
    return _fmt(r.get(w.metric))


def _notes(name: str, r: dict) -> str:
    if not r:
        return ''
    if not r.get('ok'):
        err = str(r.get('error', ''))
        return err[:60]
    if name == 'call_seq':
        return f"p50 {_fmt(r.get('p50_us'))} µs, p99 {_fmt(r.get('p99_us'))} µs"
    if name in ('emit_c2s', 'emit_s2c'):
        extra = f"n={_fmt(r.get('n'))}"
        if 'confirmed_msgs_per_s' in r:
            extra += f", confirmed {_fmt(r['confirmed_msgs_per_s'])}/s"
        return extra
    if name == 'call_64':
        return f"n={_fmt(r.get('n'))}"
    if name == 'fanout_100':
        return (f"{_fmt(r.get('clients'))} clients x {_fmt(r.get('n'))} msgs, "
                f"dups {_fmt(r.get('dups'))}")
    if name.startswith('big_'):
        size = r.get('size', 0)
        s = r.get('median_s', r.get('seconds'))
        return f"{size / 2**20:.0f} MiB in {_fmt(s)} s" if isinstance(s, float) else ''
    if name == 'faults':
        f = r.get('faults', {})
        return (f"goodput {_fmt(f.get('goodput'))}/s, lost {_fmt(r.get('lost'))}"
                f" (refused {_fmt(r.get('refused'))}), dups {_fmt(r.get('dups'))},"
                f" cuts {_fmt(r.get('cuts'))}")
    if name == 'memory':
        return f"{_fmt(r.get('sessions'))} sessions, +{r.get('rss_delta', 0) / 2**20:.1f} MiB RSS"
    return ''


def cpu_text(r: dict) -> str:
    """``server / client`` µs of CPU per message, or '-' when not measured."""
    if not r or not r.get('ok') or 'server_cpu_us' not in r:
        return '-'
    return f"{_fmt(float(r['server_cpu_us']))} / {_fmt(float(r.get('client_cpu_us', 0.0)))}"


def options_text(data: dict) -> str:
    o = data.get('args', {}).get('options') or {}
    return f"loop {o.get('loop', 'asyncio')}, json {o.get('json', 'stdlib')}"


def machine_text(data: dict) -> str:
    """One line: CPUs, Python, the libraries' versions, the options and the load."""
    m = data.get('machine', {})
    v = m.get('versions', {})
    libs = ', '.join(f'{k} {val}' for k, val in v.items() if val)
    load = m.get('loadavg')
    load_text = f", load {load[0]:.1f} at start" if load else ''
    return (f"{m.get('cpu_count', '?')} CPUs ({m.get('cpu_model') or '?'}), "
            f"{m.get('python_implementation', 'Python')} {m.get('python', '?')}, {libs}; "
            f"{options_text(data)}; scale {data.get('args', {}).get('scale')}{load_text}; "
            f"{m.get('timestamp', '')}")


def _rows(data: dict) -> list[tuple[str, ...]]:
    rows = [('workload', 'metric', LIB_LABELS['socketio'], 'relio', 'relio/py-sio',
             'py-sio CPU µs srv/cli', 'relio CPU µs srv/cli',
             'python-socketio notes', 'relio notes')]
    for name, res in data['workloads'].items():
        w = BY_NAME[name]
        rr = res['results']
        rat = res.get('ratio')
        unit = w.unit + ('' if w.higher_is_better else ' (lower=better)')
        rows.append((name, unit, value_text(name, rr.get('socketio', {})),
                     value_text(name, rr.get('relio', {})),
                     f'{rat:.2f}x' if rat is not None else '-',
                     cpu_text(rr.get('socketio', {})), cpu_text(rr.get('relio', {})),
                     _notes(name, rr.get('socketio', {})), _notes(name, rr.get('relio', {}))))
        if name == 'memory' and res.get('relio_minus_socketio_bytes') is not None:
            rows.append(('', 'relio - py-sio', '', _fmt(float(res['relio_minus_socketio_bytes'])),
                         '', '', '', '', 'bytes per session'))
    return rows


def _speedup_rows(data: dict) -> list[tuple[str, ...]]:
    """Per workload run again with the speedups: each library's figure and CPU with the defaults
    and with the speedups, and the gain."""
    sp = data.get('speedups')
    if not sp:
        return []
    o = sp['options']
    what = '+'.join(f'{v}' for k, v in o.items() if v != {'loop': 'asyncio', 'json': 'stdlib'}[k])
    rows = [('workload', 'metric', 'py-sio', f'py-sio +{what}', 'gain', 'relio',
             f'relio +{what}', 'gain', f'relio +{what}/py-sio +{what}',
             'relio CPU µs srv/cli', f'relio +{what} CPU µs srv/cli')]
    for name, fast in sp['workloads'].items():
        base = data['workloads'].get(name)
        if base is None:
            continue
        w = BY_NAME[name]
        cells: list[str] = [name, w.unit]
        for lib in LIBS:
            a, b = base['results'].get(lib, {}), fast['results'].get(lib, {})
            cells += [value_text(name, a), value_text(name, b)]
            va, vb = a.get(w.metric), b.get(w.metric)
            ok = a.get('ok') and b.get('ok') and isinstance(va, (int, float)) and va
            cells.append(f'{vb / va:.2f}x' if ok else '-')
        rat = fast.get('ratio')
        cells.append(f'{rat:.2f}x' if rat is not None else '-')
        cells += [cpu_text(base['results'].get('relio', {})),
                  cpu_text(fast['results'].get('relio', {}))]
        rows.append(tuple(cells))
    return rows


def _text_table(rows: list[tuple[str, ...]], left: tuple[int, ...]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        cells = [c.ljust(widths[i]) if i in left else c.rjust(widths[i])
                 for i, c in enumerate(r)]
        lines.append(' | '.join(cells).rstrip())
        if k == 0:
            lines.append('-+-'.join('-' * wd for wd in widths))
    return lines


def _md_table(rows: list[tuple[str, ...]]) -> list[str]:
    out = ['| ' + ' | '.join(rows[0]) + ' |', '|' + '---|' * len(rows[0])]
    for r in rows[1:]:
        out.append('| ' + ' | '.join(c.replace('|', '/') for c in r) + ' |')
    return out


CPU_NOTE = ('CPU µs srv/cli: CPU time per message (fanout_100: per delivery, all client '
            'processes together) of the server and the client in the measured phase')


def table(data: dict) -> str:
    """The plain-text table printed at the end of a run (machine and options above it), and the
    speedups' table if the run had them."""
    lines = [machine_text(data), ''] + _text_table(_rows(data), (0, 1, 7, 8)) + [CPU_NOTE]
    sp = _speedup_rows(data)
    if sp:
        lines += ['', 'optional speedups, measured right after the defaults in the same run:']
        lines += _text_table(sp, (0, 1))
    return '\n'.join(lines)


def markdown(data: dict) -> str:
    """The same table(s) in Markdown, with the machine and versions under them (for the
    README)."""
    out = _md_table(_rows(data)) + ['', CPU_NOTE + '.']
    sp = _speedup_rows(data)
    if sp:
        out += ['', 'Optional speedups, measured right after the defaults in the same run:', '']
        out += _md_table(sp)
    out += ['', f'Machine: {machine_text(data)}.']
    return '\n'.join(out) + '\n'


def write_json(data: dict, out_dir: str, stem: str = 'e2e') -> str:
    """Write ``<stem>.json`` and ``<stem>.md`` (the Markdown table); returns the JSON's path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, stem + '.json')
    with open(path, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=False, default=str)
        f.write('\n')
    with open(os.path.join(out_dir, stem + '.md'), 'w') as f:
        f.write(markdown(data))
    return path


def draw_png(data: dict, out_dir: str, stem: str = 'e2e') -> str | None:
    """Grouped bars per workload, python-socketio = 1. Returns the path, or None (with a reason
    printed by the caller) when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(data['workloads'])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.45 * len(names) + 2), 5.0))
    width = 0.38
    top = 1.0
    labelled: set[str] = set()

    def label(lib: str) -> str | None:
        if lib in labelled:
            return None
        labelled.add(lib)
        return LIB_LABELS[lib]
    for k, name in enumerate(names):
        res = data['workloads'][name]
        w = BY_NAME[name]
        rr = res['results']
        s_ok = rr.get('socketio', {}).get('ok')
        r_ok = rr.get('relio', {}).get('ok')
        rat = res.get('ratio')
        xs, xr = k - width / 2, k + width / 2
        if s_ok:
            ax.bar(xs, 1.0, width, color='#9e9e9e', label=label('socketio'))
        else:
            ax.bar(xs, 0.04, width, color='#d32f2f')
            ax.text(xs, 0.07, 'failed', ha='center', va='bottom', fontsize=7, color='#d32f2f')
        if s_ok and name == 'faults':
            ax.text(xs, 1.0, f"lost {rr['socketio'].get('lost', 0):,}", ha='center',
                    va='bottom', fontsize=7)
        if rat is not None:
            ax.bar(xr, rat, width, color='#1976d2', label=label('relio'))
            ax.text(xr, rat, f'{rat:.2f}x', ha='center', va='bottom', fontsize=8)
            top = max(top, rat)
        elif r_ok:
            ax.bar(xr, 1.0, width, color='#1976d2', hatch='//', edgecolor='white',
                   label=label('relio'))
            v = rr['relio'].get(w.metric)
            ax.text(xr, 1.0, f'{v:.0f} {w.unit}\n(only relio)' if isinstance(v, (int, float))
                    else 'ok', ha='center', va='bottom', fontsize=7)
        else:
            ax.bar(xr, 0.04, width, color='#d32f2f')
            ax.text(xr, 0.07, 'failed', ha='center', va='bottom', fontsize=7, color='#d32f2f')
    ax.axhline(1.0, color='black', linewidth=0.6, linestyle='--')
    def cpu_label(name: str) -> str:
        """Server CPU µs per message, python-socketio -> relio, when both were measured."""
        rr = data['workloads'][name]['results']
        a, b = rr.get('socketio', {}), rr.get('relio', {})
        if a.get('ok') and b.get('ok') and 'server_cpu_us' in a and 'server_cpu_us' in b:
            return f"\nsrv CPU µs/msg\n{_fmt(float(a['server_cpu_us']))} -> " \
                   f"{_fmt(float(b['server_cpu_us']))}"
        return ''

    labels = [f"{n}\n{BY_NAME[n].unit}{'' if BY_NAME[n].higher_is_better else ' (lower=better)'}"
              f"{cpu_label(n)}" for n in names]
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(0, top * 1.2 + 0.1)
    ax.set_ylabel('relative to python-socketio (= 1)')
    m = data.get('machine', {})
    v = m.get('versions', {})
    ax.set_title(f"relio vs python-socketio, end to end over loopback "
                 f"({m.get('cpu_count', '?')} CPUs, scale {data.get('args', {}).get('scale')}, "
                 f"{options_text(data)})\n"
                 f"Python {m.get('python', '?')}, relio {v.get('relio')}, python-socketio "
                 f"{v.get('python-socketio')}, python-engineio {v.get('python-engineio')}, "
                 f"uvicorn {v.get('uvicorn')}", fontsize=9)
    handles, lbls = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc='upper left', fontsize=8)
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, stem + '.png')
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
