"""Print compiled-vs-pure-Python speedups, and the cost of metrics, at the end of a benchmark run.

Each compiled benchmark is paired with its pure-Python twin from the same run: the same test with the
implementation parameter ``compiled`` swapped for ``pure_python``, ``python`` or ``set+deque``, or a
``test_compiled_*`` test with its ``test_python_*`` twin.
"""

BASELINE_TOKENS = ("pure_python", "python", "set+deque")


def _twins(name: str):
    for token in BASELINE_TOKENS:
        yield name.replace("[compiled", f"[{token}")
    yield name.replace("test_compiled_", "test_python_")


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    means = {b.name: b.stats.mean for b in session.benchmarks if b.stats is not None}
    rows = []
    for name, mean in means.items():
        if "compiled" not in name:
            continue
        for twin in _twins(name):
            if twin != name and twin in means:
                rows.append((name, means[twin] / mean))
                break
    if rows:
        terminalreporter.section("compiled vs pure Python (same run, ratio of means)")
        for name, ratio in sorted(rows):
            terminalreporter.write_line(f"{ratio:8.1f}x  {name}")
    mins = {b.name: b.stats.min for b in session.benchmarks if b.stats is not None}
    metrics_rows = []
    for name, mean in means.items():
        if "[metrics-on" in name:
            off = name.split("[")[0] + "[metrics-off]"
            if off in means:
                metrics_rows.append((name, mean / means[off], mins[name] / mins[off]))
    if metrics_rows:
        terminalreporter.section("metrics on vs off (same run; cost of relio.observe)")
        for name, ratio, min_ratio in sorted(metrics_rows):
            terminalreporter.write_line(
                f"{ratio:8.3f}x of means, {min_ratio:.3f}x of minimums  {name}")
