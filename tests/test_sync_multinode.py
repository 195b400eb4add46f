"""Thread-based relio servers on several processes: ``relio.Server`` + ``relio.RedisManager``.

Real processes only, as tests/test_multinode.py: a redis-server, server nodes as OS processes
(tests/support/multinode_app.py in mode 'relio-sync': werkzeug's threaded server, default
``relio.RedisManager(url)``, i.e. durable; mode 'flask': a Flask-SocketIO app on
``relio.flask.SocketIO(app, message_queue=url)``), the round-robin balancer without stickiness;
clients and emitters in this process.

test_thread_nodes_node_kill_async_client
    test_multinode's relio node kill on two thread-based nodes: numbered emits both ways (the
    server-to-client ones from a write-only relio emitter), calls, and a room broadcast emitted on
    the other node by a client of that node; SIGKILL of the node holding the session mid-traffic.
    The client resumes on the other node with the same sid, rooms and session data; nothing
    lost, duplicated or run twice (but durable mode's documented re-run of what the killed node
    was handling, see test_multinode).
test_thread_nodes_node_kill_sync_client
    The same with a thread-based ``relio.Client`` and a thread-based write-only
    ``relio.RedisManager`` emitter.
test_mixed_async_and_thread_nodes
    One ``relio.AsyncServer`` + ``relio.AsyncRedisManager`` node and one ``relio.Server`` +
    ``relio.RedisManager`` node on one channel: room emits from each node reach the other's
    clients exactly once and in order; a server's ``call()`` to a client of the other node gets its
    answer; a session moves by graceful hand-over from the asyncio node to the thread-based one,
    then back.
test_mixed_node_kill_taken_over_by_the_other_kind
    test_multinode's traffic; SIGKILL of the thread-based node holding the session: the asyncio node
    takes it over from the thread-based node's last durable save, nothing lost or duplicated.
test_flask_socketio_nodes_share_the_message_queue
    Two Flask-SocketIO processes with ``message_queue=``: an emit on one reaches a client of the
    other, and so do python-socketio's ``socketio.RedisManager(write_only=True)`` emitter (bridged)
    and relio's Flask-SocketIO external emitter, each exactly once.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest
import socketio

import relio
import relio.flask
from tests.support.balancer import Balancer
from tests.support.baseline import dup_missing, ranges
from tests.support.nodes import start_node
from tests.support.redis_server import run_redis
from tests.support.waiting import until
from tests.test_multinode import (
    INTERRUPTED_M,
    WS,
    RelioRun,
    call_numbers,
    flat,
    m_numbers,
    node_diagnostics,
    relio_cluster,
)

pytestmark = [pytest.mark.filterwarnings('ignore:unclosed <socket.socket:ResourceWarning')]


# --- async client: test_multinode's traffic on thread-based nodes -------------------------------
@pytest.mark.timeout(120)
async def test_thread_nodes_node_kill_async_client(tmp_path):
    t_begin = time.monotonic()
    async with relio_cluster(tmp_path, node_mode='relio-sync', count=2) as (redis, nodes, lb, run):
        nb: list[int] = []
        run.client.on('nb', lambda n: nb.append(n))
        await run.setup()
        holder = run.holder()
        other = next(n for n in nodes if n is not holder)
        # a room broadcast emitted on node B, by a client of node B
        peer = relio.AsyncClient(handle_sigint=False)
        await peer.connect(other.url, transports=WS, wait_timeout=10)
        try:
            assert await peer.call('whoami', timeout=10) == other.name
            for n in range(30):
                assert await peer.call('broadcast', ('all', n, 'nb'), timeout=10) == n
            await until(lambda: len(nb) >= 30, 10, 'the broadcasts of node B')
            t = run.traffic
            await holder.kill()
            killed_at, t_kill = t.m_sent, time.monotonic()
            await until(lambda: len(run.resumes) >= 1, 30, 'the session resumed on node B')
            resume_s = run.resumes[0] - t_kill
            where = await run.where()
            assert where == [other.name, ['all'], {'joined': 'all'}], where
            assert run.client.get_sid() == run.sid
            assert run.sid in other.events('resume')
            for n in range(30, 60):              # node B's broadcasts reach it on node B now
                assert await peer.call('broadcast', ('all', n, 'nb'), timeout=10) == n
            await t.wait_steps(m=150, b=150, what='traffic after the resume')
            stats = await run.finish(faulted=holder)
            await until(lambda: len(nb) >= 60, 10, 'the broadcasts of node B after the resume')
        finally:
            await peer.disconnect()
    assert nb == list(range(60)), nb
    print(f'\nTHREAD NODES kill (async client): killed {holder.name} at m#{killed_at}, resumed on '
          f'{where[0]} after {resume_s:.2f}s (sid kept); node B broadcasts 60/60; {stats}; '
          f'test took {time.monotonic() - t_begin:.1f}s')


# --- sync client ------------------------------------------------------------------------------
class SyncTraffic:
    """test_multinode's three numbered streams from threads: a thread-based relio client's emits
    and calls, a thread-based write-only relio emitter's room broadcasts."""

    def __init__(self, client: relio.Client, emitter: relio.RedisManager) -> None:
        self.client, self.emitter = client, emitter
        self.m_sent = self.calls_sent = self.b_sent = 0
        self.m_deliveries: list = []
        self.b_deliveries: list = []
        self.raised: list = []
        self.call_results: dict[int, object] = {}
        self.b_got: list[int] = []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=fn, daemon=True)
                        for fn in (self._emits, self._calls, self._broadcasts)]
        client.on('b', self.b_got.append)

    def _paced(self, rate: float, step, limit: int) -> None:
        t0 = time.monotonic()
        for i in range(limit):
            if self.stop_event.is_set():
                return
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                step(i)
            except Exception as exc:
                self.raised.append((step.__name__, i, exc))

    def _emits(self) -> None:
        def m(i: int) -> None:
            self.m_deliveries.append(self.client.emit('m', i))
            self.m_sent = i + 1
        self._paced(100.0, m, 20_000)

    def _calls(self) -> None:
        def call(n: int) -> None:
            self.calls_sent = n + 1
            self.call_results[n] = self.client.call('work', n, timeout=15)
        self._paced(10.0, call, 2_000)

    def _broadcasts(self) -> None:
        def b(j: int) -> None:
            self.b_deliveries.append(self.emitter.emit('b', j, room='all', namespace='/'))
            self.b_sent = j + 1
        self._paced(100.0, b, 20_000)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(20)
            assert not thread.is_alive(), 'traffic thread did not stop'


@pytest.mark.timeout(120)
async def test_thread_nodes_node_kill_sync_client(tmp_path):
    t_begin = time.monotonic()
    async with relio_cluster(tmp_path, node_mode='relio-sync', count=2) as (redis, nodes, lb, _):
        client = relio.Client(reconnection_delay=0.1, reconnection_delay_max=0.5,
                              randomization_factor=0, handle_sigint=False)
        emitter = relio.RedisManager(redis.url, write_only=True)
        resumes: list[float] = []
        connects: list[int] = []
        client.on('relio_resume', lambda: resumes.append(time.monotonic()))
        client.on('connect', lambda: connects.append(1))
        traffic = SyncTraffic(client, emitter)
        try:
            await asyncio.to_thread(client.connect, lb.url, transports=WS, wait_timeout=10)
            sid = client.get_sid()
            first = await asyncio.to_thread(client.call, 'join', 'all', timeout=10)
            holder = next(n for n in nodes if n.name == first)
            traffic.start()
            await until(lambda: traffic.m_sent >= 100 and traffic.calls_sent >= 5
                        and len(traffic.b_got) >= 50, 20, 'traffic before the fault')
            await holder.kill()
            killed_at, t_kill = traffic.m_sent, time.monotonic()
            await until(lambda: resumes, 30, 'the session resumed on the other node')
            where = await asyncio.to_thread(client.call, 'where', timeout=20)
            assert where[0] != holder.name and where[1:] == [['all'], {'joined': 'all'}], where
            assert client.get_sid() == sid
            m0, b0 = traffic.m_sent, traffic.b_sent
            await until(lambda: traffic.m_sent >= m0 + 150 and traffic.b_sent >= b0 + 150, 20,
                        'traffic after the resume')
            await asyncio.to_thread(traffic.stop)

            def settle() -> list:
                failed = []
                for d in traffic.m_deliveries + traffic.b_deliveries:
                    try:
                        d.wait(30)
                    except Exception as exc:
                        failed.append(exc)
                return failed
            failed = await asyncio.to_thread(settle)
            with contextlib.suppress(AssertionError):
                await until(lambda: len(flat(m_numbers(nodes, sid))) >= traffic.m_sent
                            and len(flat(call_numbers(nodes, sid))) >= traffic.calls_sent
                            and len(traffic.b_got) >= traffic.b_sent, 30, 'everything handled')
        finally:
            traffic.stop_event.set()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(client.disconnect)
            emitter.close()
        m_per_node, c_per_node = m_numbers(nodes, sid), call_numbers(nodes, sid)
        m_dups, m_missing = dup_missing(flat(m_per_node), traffic.m_sent)
        c_dups, c_missing = dup_missing(flat(c_per_node), traffic.calls_sent)
        last_m = set(m_per_node[holder.name][-INTERRUPTED_M:])
        last_c = set(c_per_node[holder.name][-1:])
        rerun = ([n for n in m_dups if n in last_m], [n for n in c_dups if n in last_c])
        m_dups = [n for n in m_dups if n not in last_m]
        c_dups = [n for n in c_dups if n not in last_c]
        b_dups, b_missing = dup_missing(traffic.b_got, traffic.b_sent)
        bad_calls = {n: r for n, r in traffic.call_results.items() if r != n * 10}
        report = (f'm sent {traffic.m_sent} missing [{ranges(m_missing)}] dup [{ranges(m_dups)}]'
                  f' per node { {k: len(v) for k, v in m_per_node.items()} }; calls '
                  f'{traffic.calls_sent} missing [{ranges(c_missing)}] dup [{ranges(c_dups)}] '
                  f'bad {dict(list(bad_calls.items())[:5])}; b sent {traffic.b_sent} missing '
                  f'[{ranges(b_missing)}] dup [{ranges(b_dups)}]; raised {traffic.raised[:5]}; '
                  f'deliveries failed {failed[:5]}; connects {len(connects)}\n'
                  + node_diagnostics(nodes))
        assert not traffic.raised and not failed, report
        assert m_missing == [] and m_dups == [], report
        assert all(xs == sorted(xs) for xs in m_per_node.values()), report
        assert c_missing == [] and c_dups == [] and bad_calls == {}, report
        assert traffic.b_got == list(range(traffic.b_sent)), report
        assert len(connects) == 1, report
    print(f'\nTHREAD NODES kill (sync client): killed {holder.name} at m#{killed_at}, resumed on '
          f'{where[0]} after {resumes[0] - t_kill:.2f}s (sid kept); m {traffic.m_sent}, calls '
          f'{traffic.calls_sent}, b {traffic.b_sent}: lost 0; re-run after the fault {rerun}; '
          f'test took {time.monotonic() - t_begin:.1f}s')


# --- mixed deployment ----------------------------------------------------------------------------
@pytest.mark.timeout(120)
async def test_mixed_async_and_thread_nodes(tmp_path):
    t_begin = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        redis = await stack.enter_async_context(run_redis())
        node_a = await start_node(redis.url, mode='relio', name='async', datadir=tmp_path)
        stack.push_async_callback(node_a.close)
        node_s = await start_node(redis.url, mode='relio-sync', name='sync', datadir=tmp_path)
        stack.push_async_callback(node_s.close)
        lb = await stack.enter_async_context(Balancer([node_a.port, node_s.port]))
        clients, got, resumes = {}, {}, {}
        for name in ('x', 'y'):          # round robin: x on the asyncio node, y on the other
            client = relio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.5,
                                       randomization_factor=0, handle_sigint=False)
            got[name], resumes[name] = [], []
            client.on('nb', got[name].append)
            client.on('question', lambda asker, name=name: f'{name} answers {asker}')
            client.on('relio_resume', lambda name=name: resumes[name].append(1))
            await client.connect(lb.url, transports=WS, wait_timeout=10)
            stack.push_async_callback(client.disconnect)
            clients[name] = client
        x, y = clients['x'], clients['y']
        sids = {name: c.get_sid() for name, c in clients.items()}
        assert await x.call('join', 'all', timeout=10) == 'async'
        assert await y.call('join', 'all', timeout=10) == 'sync'

        async def broadcasts(start: int) -> list[int]:
            """Each node emits to the room: x's node 30, y's node 30."""
            for n in range(start, start + 30):
                assert await x.call('broadcast', ('all', n, 'nb'), timeout=10) == n
                assert await y.call('broadcast', ('all', 1000 + n, 'nb'), timeout=10) == 1000 + n
            return [*range(start, start + 30), *range(1000 + start, 1000 + start + 30)]

        def exactly_once_in_order(seen: list[int], expected: list[int]) -> bool:
            return sorted(seen) == sorted(expected) and \
                [n for n in seen if n < 1000] == sorted(n for n in seen if n < 1000) and \
                [n for n in seen if n >= 1000] == sorted(n for n in seen if n >= 1000)

        # an emit with a callback to a client of the other node: the answer crosses back
        assert await x.call('ask', sids['y'], timeout=15) == 'y answers async'
        assert await y.call('ask', sids['x'], timeout=15) == 'x answers sync'
        expected = await broadcasts(0)
        await until(lambda: len(got['x']) >= 60 and len(got['y']) >= 60, 10, 'room emits')
        assert exactly_once_in_order(got['x'], expected), got['x']
        assert exactly_once_in_order(got['y'], expected), got['y']
        # graceful hand-over, asyncio node -> thread-based node
        await node_a.stop()
        assert node_a.final_stats()[-1]['handed_over'] == 1, node_a.final_stats()
        await until(lambda: resumes['x'], 20, 'x resumed on the thread-based node')
        assert await x.call('where', timeout=20) == ['sync', ['all'], {'joined': 'all'}]
        assert x.get_sid() == sids['x']
        # and back: thread-based node -> asyncio node (both clients move)
        await node_a.start()
        await node_s.stop()
        assert node_s.final_stats()[-1]['handed_over'] == 2, node_s.final_stats()
        await until(lambda: len(resumes['x']) >= 2 and resumes['y'], 20,
                    'both clients resumed on the asyncio node')
        assert await x.call('where', timeout=20) == ['async', ['all'], {'joined': 'all'}]
        assert await y.call('where', timeout=20) == ['async', ['all'], {'joined': 'all'}]
        assert {name: c.get_sid() for name, c in clients.items()} == sids
        for name in ('x', 'y'):
            assert node_a.events('connect').count(sids[name]) + \
                node_s.events('connect').count(sids[name]) == 1     # connect fired once
        got['x'].clear()
        got['y'].clear()
        for n in range(60, 70):
            assert await x.call('broadcast', ('all', n, 'nb'), timeout=10) == n
        await until(lambda: len(got['x']) >= 10 and len(got['y']) >= 10, 10, 'room emits after')
        assert got['x'] == got['y'] == list(range(60, 70))
    print(f'\nMIXED nodes: room emits from each node reached the other node\'s client once and in '
          f'order; hand-over asyncio -> thread-based -> asyncio kept sids {sids}; '
          f'test took {time.monotonic() - t_begin:.1f}s')


@pytest.mark.timeout(120)
async def test_mixed_node_kill_taken_over_by_the_other_kind(tmp_path):
    """test_multinode's traffic through a thread-based and an asyncio node: SIGKILL of the
    thread-based node holding the session; the asyncio node takes it over from its last durable
    save (written by the thread-based node) and nothing is lost or duplicated."""
    t_begin = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        redis = await stack.enter_async_context(run_redis())
        nodes = []
        for name, mode in (('n1', 'relio-sync'), ('n2', 'relio')):   # the client lands on n1
            node = await start_node(redis.url, mode=mode, name=name, datadir=tmp_path)
            stack.push_async_callback(node.close)
            nodes.append(node)
        lb = await stack.enter_async_context(Balancer([n.port for n in nodes]))
        run = RelioRun(redis.url, lb, nodes)
        stack.push_async_callback(run.close)
        await run.setup()
        holder = run.holder()
        assert holder.mode == 'relio-sync', holder
        t = run.traffic
        await holder.kill()
        killed_at, t_kill = t.m_sent, time.monotonic()
        await until(lambda: len(run.resumes) >= 1, 30, 'the session resumed on the asyncio node')
        where = await run.where()
        assert where == ['n2', ['all'], {'joined': 'all'}], where
        await t.wait_steps(m=150, b=150, what='traffic after the resume')
        stats = await run.finish(faulted=holder)
    print(f'\nMIXED kill: killed the thread-based {holder.name} at m#{killed_at}, resumed on the '
          f'asyncio node after {run.resumes[0] - t_kill:.2f}s (sid kept); {stats}; '
          f'test took {time.monotonic() - t_begin:.1f}s')


# --- Flask-SocketIO ----------------------------------------------------------------------------
@pytest.mark.timeout(90)
async def test_flask_socketio_nodes_share_the_message_queue(tmp_path):
    async with contextlib.AsyncExitStack() as stack:
        redis = await stack.enter_async_context(run_redis())
        nodes = []
        for name in ('f1', 'f2'):
            node = await start_node(redis.url, mode='flask', name=name, datadir=tmp_path)
            stack.push_async_callback(node.close)
            nodes.append(node)
        x = relio.AsyncClient(handle_sigint=False)
        y = relio.AsyncClient(handle_sigint=False)
        got: list = []
        x.on('b', got.append)
        await x.connect(nodes[0].url, transports=WS, wait_timeout=10)
        stack.push_async_callback(x.disconnect)
        await y.connect(nodes[1].url, transports=WS, wait_timeout=10)
        stack.push_async_callback(y.disconnect)
        assert await x.call('join', 'all', timeout=10) == 'f1'
        assert await y.call('whoami', timeout=10) == 'f2'
        for n in range(20):                       # emitted on f2, reaching x on f1
            assert await y.call('broadcast', ('all', n), timeout=10) == n
        await until(lambda: len(got) >= 20, 10, "f2's emits reach f1's client")
        assert got == list(range(20))

        def python_socketio_emitter() -> None:
            emitter = socketio.RedisManager(redis.url, channel='flask-socketio',
                                            write_only=True)
            emitter.emit('b', 'from python-socketio', namespace='/', room='all')
            emitter.redis.close()
        await asyncio.to_thread(python_socketio_emitter)
        await until(lambda: len(got) >= 21, 10, "python-socketio's emit")

        def relio_external_emitter() -> None:
            external = relio.flask.SocketIO(message_queue=redis.url)
            external.emit('b', 'from a worker', to='all')
            external.emit('b', 'end', to='all')     # (in order after it: a second copy shows)
            external.server.manager.close()
        await asyncio.to_thread(relio_external_emitter)
        await until(lambda: 'end' in got, 10, "the external emitter's emits")
        assert got == [*range(20), 'from python-socketio', 'from a worker', 'end'], got


# --- in one process, each mode -------------------------------------------------------------------
@pytest.mark.timeout(90)
@pytest.mark.parametrize('mode', ['fast', 'durable'])
def test_thread_nodes_in_one_process_hand_over_on_shutdown(mode):
    """Two thread-based nodes in this process (two managers on the one cluster loop) behind the
    balancer: numbered emits both ways across ``shutdown()`` of the node holding the session, in
    either mode; the session moves with its sid, rooms and data, exactly once and in order."""
    from tests.support.redis_server import RedisServer
    from tests.support.wsgi import LoopThread, serve_sync_socketio, serve_wsgi, wait_for

    def node(url: str, name: str, got: list) -> relio.Server:
        sio = relio.Server(async_mode='threading',
                           client_manager=relio.RedisManager(url, channel='inproc', mode=mode))
        sio.on('m', lambda sid, n: got.append((name, n)))

        @sio.on('join')
        def join(sid, room):
            sio.enter_room(sid, room)
            sio.save_session(sid, {'joined': room})
            return name

        @sio.on('where')
        def where(sid):
            return [name, sorted(r for r in sio.rooms(sid) if r != sid), sio.get_session(sid)]
        return sio

    with LoopThread() as lt:
        redis = RedisServer()
        lt.run(redis.__aenter__())
        try:
            got: list = []
            a, b = node(redis.url, 'a', got), node(redis.url, 'b', got)
            with serve_sync_socketio(b) as port_b, \
                    contextlib.ExitStack() as stack:
                port_a = stack.enter_context(serve_wsgi(relio.WSGIApp(a)))   # shut down below
                lb = lt.run(Balancer([port_a, port_b]).__aenter__())
                stack.callback(lambda: lt.run(lb.__aexit__(None, None, None)))
                client = relio.Client(reconnection_delay=0.1, reconnection_delay_max=0.5,
                                      randomization_factor=0, handle_sigint=False)
                b_got: list = []
                resumed: list = []
                client.on('b', b_got.append)
                client.on('relio_resume', lambda: resumed.append(1))
                client.connect(lb.url, transports=WS, wait_timeout=10)
                stack.callback(client.disconnect)
                sid = client.get_sid()
                assert client.call('join', 'all', timeout=10) == 'a'
                for n in range(100):
                    client.emit('m', n)
                    b.emit('b', n, room='all')          # crosses the bus to node a
                assert wait_for(lambda: len(got) >= 100 and len(b_got) >= 100, 15)
                a.shutdown()                            # hands the session over
                assert a.manager.stats['handed_over'] == 1, a.manager.stats
                assert wait_for(lambda: resumed, 20)
                assert client.call('where', timeout=10) == ['b', ['all'], {'joined': 'all'}]
                assert client.get_sid() == sid
                deliveries = []
                for n in range(100, 200):
                    deliveries.append(client.emit('m', n))
                    deliveries.append(b.emit('b', n, room='all'))   # local to node b now
                for delivery in deliveries:
                    delivery.wait(10)
                assert wait_for(lambda: len(got) >= 200 and len(b_got) >= 200, 15)
        finally:
            lt.run(redis.__aexit__(None, None, None))
    assert [n for _, n in got] == list(range(200)), got
    assert {name for name, n in got if n >= 100} == {'b'}
    assert b_got == list(range(200)), b_got
