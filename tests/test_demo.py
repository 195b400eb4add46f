"""The README's first command, ``python -m relio demo``, and what it is built on.

* The real demo (a real aiohttp server and client on 127.0.0.1 through relio.demo.flaky_link, with a
  smaller workload): relio's column shows every message delivered exactly once and in order, every
  call answered, the upload delivered and the session kept; python-socketio's shows loss.
* ``--engine``: the sans-I/O simulation still shows the same difference.
* The command line prints usage without a command.
* The flaky link itself: plans are seeded, cuts abort live connections, stalls hold bytes and then
  abort the connections they froze.
"""

import asyncio
import contextlib
import io

import pytest

from relio import demo
from relio.__main__ import main
from relio.demo.flaky_link import FaultPlan, FlakyLink

SEED = 7
MESSAGES = 400          # each way (the demo's default is 3,000)
DURATION = 4.0          # seconds of workload (the demo's default is 6)
POLL = 0.01
WAIT = 5.0              # seconds, for conditions on loopback


def parse_table(text: str) -> dict[tuple[str, str], list[str]]:
    """The demo's table as {(section, metric): [cell per library]}; libraries under key ('', '')."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split() == ["python-socketio", "relio"])
    table = {("", ""): lines[head].split()}
    metric_at = demo.INDENT + demo.SECTION_COLUMN
    values_at = metric_at + demo.METRIC_COLUMN
    section = ""
    for line in lines[head + 1:]:
        if not line.strip():
            break
        section = line[demo.INDENT:metric_at].strip() or section
        table[(section, line[metric_at:values_at].strip())] = line[values_at:].split()
    return table


def cells(table, section, metric) -> dict[str, str]:
    """{library: cell}; ``ok / failed`` cells are kept as 'ok/failed'."""
    libraries = table[("", "")]
    raw = " ".join(table[(section, metric)]).replace(" / ", "/").split()
    assert len(raw) == len(libraries), (section, metric, raw)
    return dict(zip(libraries, raw))


# --- the real demo -----------------------------------------------------------------------------
@pytest.mark.timeout(90)
async def test_real_demo_relio_delivers_everything_python_socketio_loses():
    out = io.StringIO()
    code = await demo.amain(seed=SEED, messages=MESSAGES, duration=DURATION, out=out)
    text = out.getvalue()
    assert code == 0, text
    table = parse_table(text)
    assert table[("", "")] == ["python-socketio", "relio"]

    for section in ("client -> server", "server -> client"):
        delivered = cells(table, section, "delivered")
        lost = cells(table, section, "lost (vanished silently)")
        assert delivered["relio"] == str(MESSAGES), text
        assert lost["relio"] == "0", text
        assert cells(table, section, "duplicated")["relio"] == "0", text
        assert cells(table, section, "out of order")["relio"] == "0", text
    refused = cells(table, "client -> server", "refused (emit raised)")
    assert refused["relio"] == "0", text
    assert cells(table, "call() (5 x 0.3 s)", "ok / failed")["relio"] == f"{demo.CALLS}/0", text
    assert cells(table, "5 MB upload", "delivered") == {"python-socketio": "no", "relio": "yes"}
    assert cells(table, "session id", "unchanged") == {"python-socketio": "no", "relio": "yes"}
    assert int(cells(table, "relio", "frames retransmitted")["relio"]) >= 0

    # python-socketio lost messages (silently or by raising) with the same faults, and its
    # counts add up: delivered + refused + lost = sent.
    up_delivered = int(cells(table, "client -> server", "delivered")["python-socketio"])
    up_lost = int(cells(table, "client -> server", "lost (vanished silently)")["python-socketio"])
    down_delivered = int(cells(table, "server -> client", "delivered")["python-socketio"])
    down_lost = int(cells(table, "server -> client", "lost (vanished silently)")["python-socketio"])
    assert up_delivered + int(refused["python-socketio"]) + up_lost == MESSAGES
    assert down_delivered + down_lost == MESSAGES
    assert up_delivered < MESSAGES and down_delivered < MESSAGES, text
    assert "relio delivered everything exactly once and in order" in text


def test_measure_counts_loss_duplicates_and_reordering():
    flow = demo.measure([0, 2, 1, 2, 4], sent=6, refused=1)
    assert (flow.delivered, flow.refused, flow.lost, flow.duplicated, flow.out_of_order) == \
        (4, 1, 1, 1, 1)
    assert not flow.clean
    assert demo.measure([0, 1, 2], sent=3).clean


def test_report_fails_when_relio_is_not_clean():
    clean = demo.measure(list(range(10)), sent=10)
    lossy = demo.measure([0, 1, 3], sent=10)
    row = dict(calls_ok=5, calls_failed=0, upload_delivered=True, reconnects=2,
               same_session=True, retransmitted=3, seconds=1.0)
    plain = demo.RunResult("python-socketio", lossy, lossy, **{**row, "retransmitted": None})
    bad = demo.RunResult("relio", clean, lossy, **row)
    out = io.StringIO()
    assert demo.report([plain, bad], FaultPlan.seeded(SEED, DURATION), out) == 1
    assert "relio misbehaved" in out.getvalue()
    good = demo.RunResult("relio", clean, clean, **row)
    out = io.StringIO()
    assert demo.report([plain, good], FaultPlan.seeded(SEED, DURATION), out) == 0
    assert "relio delivered everything" in out.getvalue()


# --- the engine simulation and the command line ---------------------------------------------------
@pytest.mark.timeout(60)
def test_engine_simulation_shows_the_difference(capsys):
    assert main(["demo", "--engine", "--seed", str(SEED)]) == 0
    out = capsys.readouterr().out
    relio_line = next(line for line in out.splitlines() if line.split()[:2] == ["relio", "received"])
    plain_line = next(line for line in out.splitlines() if "at most once" in line)
    assert "lost    0   duplicated    0   out of order    0" in relio_line
    assert "lost    0   duplicated    0" not in plain_line


@pytest.mark.timeout(10)
def test_no_command_prints_usage(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "demo" in out


@pytest.mark.timeout(10)
def test_help_prints_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--engine" in out and "--seed" in out


# --- the flaky link ------------------------------------------------------------------------------
def test_fault_plans_are_seeded_with_cuts_and_one_stall():
    plan = FaultPlan.seeded(SEED, 6.0)
    assert plan == FaultPlan.seeded(SEED, 6.0)
    assert plan.count("stall") == 1 and plan.count("cut") >= 1
    times = [f.at for f in plan.faults]
    assert times == sorted(times) and all(0 < t < 6.0 for t in times)
    for before, after in zip(plan.faults, plan.faults[1:]):     # faults do not overlap
        assert after.at >= before.at + before.seconds


@contextlib.asynccontextmanager
async def echo_server():
    async def echo(reader, writer):
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def read_until_closed(reader) -> bytes:
    data = b""
    for _ in range(1000):
        try:
            chunk = await asyncio.wait_for(reader.read(65536), WAIT)
        except ConnectionError:
            break
        if not chunk:
            break
        data += chunk
    return data


async def wait_for(condition) -> None:
    for _ in range(int(WAIT / POLL)):
        if condition():
            return
        await asyncio.sleep(POLL)
    raise AssertionError("condition not met in time")


@pytest.mark.timeout(20)
async def test_flaky_link_forwards_cuts_and_stalls():
    async with echo_server() as port, FlakyLink(port) as link:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        try:
            writer.write(b"hello")
            assert await asyncio.wait_for(reader.readexactly(5), WAIT) == b"hello"
            link.cut()
            assert await read_until_closed(reader) == b""
        finally:
            writer.close()
        assert link.stats.cuts == 1 and link.stats.connections_cut == 1

        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        try:
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), WAIT) == b"ping"
            stall = asyncio.create_task(link.stall(0.5))
            await wait_for(lambda: link.stats.stalls == 1)
            writer.write(b"held")
            with pytest.raises(asyncio.TimeoutError):     # nothing crosses while it stalls
                await asyncio.wait_for(reader.readexactly(4), 0.2)
            # A connection opened during the stall waits, then works.
            late_reader, late_writer = await asyncio.open_connection("127.0.0.1", link.port)
            try:
                late_writer.write(b"late")
                await stall
                assert await asyncio.wait_for(late_reader.readexactly(4), WAIT) == b"late"
            finally:
                late_writer.close()
            # The connection that was open when the stall began did not survive it.
            assert await read_until_closed(reader) == b""
        finally:
            writer.close()
        assert link.stats.connections_stalled == 1 and link.stats.connections == 3
