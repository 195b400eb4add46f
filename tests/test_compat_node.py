"""The real Node.js ``socket.io-client`` (npm, pinned in tests/node/package.json) against
``relio.AsyncServer``, with the very same assertions as against ``socketio.AsyncServer``.

Each test serves a real server on 127.0.0.1 (``tests.support.servers.serve_socketio``) and runs
``node tests/node/<script>.mjs <url> ...`` as a subprocess. The script prints what it observed
as JSON lines (``{"ev": ...}``, binary as ``{"$bin": hex}``); the server's handlers record what
they saw. Both sides are asserted on, identically for both server classes: a plain Socket.IO
client must not be able to tell relio's server from python-socketio's. Three transport modes:
polling upgraded to websocket (the client's default), websocket only, polling only.

On a machine where only ``pip install -e ".[test]"`` ran, the session fixture ``node_client``
installs the pinned client with ``npm ci`` first (and fails, not skips, when node/npm are missing).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
import socketio

import relio
from tests.support.servers import serve_socketio
from tests.support.waiting import until

NODE_DIR = Path(__file__).resolve().parent / 'node'
NPM_TIMEOUT = 240          # seconds for `npm ci` on a fresh machine
NODE_TIMEOUT = 30          # seconds for one node script (each script has its own 25 s watchdog)
WAIT = 10                  # seconds for any single condition on the server side

SERVERS = [pytest.param(socketio.AsyncServer, id='socketio'),
           pytest.param(relio.AsyncServer, id='relio')]


# --- the Node.js client ------------------------------------------------------------------------
def _pinned_version() -> str:
    return json.loads((NODE_DIR / 'package.json').read_text())['dependencies']['socket.io-client']


def _installed_version() -> str | None:
    manifest = NODE_DIR / 'node_modules' / 'socket.io-client' / 'package.json'
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text()).get('version')


@pytest.fixture(scope='session')
def node_client() -> dict[str, str]:
    """node's path and the socket.io-client version, installing the pinned client if needed."""
    node, npm = shutil.which('node'), shutil.which('npm')
    if node is None:
        pytest.fail('node is not installed: these tests run the real Node.js socket.io-client '
                    '(install Node.js >= 18 and npm, e.g. `apt-get install nodejs npm`)')
    pinned = _pinned_version()
    if _installed_version() != pinned:
        if npm is None:
            pytest.fail(f'socket.io-client {pinned} is not installed in {NODE_DIR}/node_modules '
                        'and npm is not available to install it (install npm, or run '
                        f'`npm ci` in {NODE_DIR})')
        has_lock = (NODE_DIR / 'package-lock.json').is_file()
        cmd = [npm, 'ci' if has_lock else 'install', '--no-audit', '--no-fund']
        try:
            proc = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True, text=True,
                                  timeout=NPM_TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f'`npm {cmd[1]}` in {NODE_DIR} did not finish in {NPM_TIMEOUT} s')
        if proc.returncode != 0:
            pytest.fail(f'`npm {cmd[1]}` in {NODE_DIR} failed ({proc.returncode}):\n'
                        f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}')
        if _installed_version() != pinned:
            pytest.fail(f'`npm {cmd[1]}` did not install socket.io-client {pinned} '
                        f'(found {_installed_version()})')
    return {'node': node, 'version': pinned}


class NodeScript:
    """A running ``node tests/node/<script> <args>``; its JSON lines accumulate in ``events``."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.noise: list[str] = []          # stdout lines that are not JSON (there should be none)
        self.stderr = b''
        self._readers = [asyncio.create_task(self._read_stdout()),
                         asyncio.create_task(self._read_stderr())]

    @classmethod
    async def start(cls, node: str, script: str, *args: str) -> 'NodeScript':
        proc = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / script), *args, cwd=NODE_DIR,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, 'NODE_NO_WARNINGS': '1'})
        return cls(proc)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode('utf-8', 'replace').strip()
            try:
                self.events.append(json.loads(text))
            except ValueError:
                self.noise.append(text)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    def describe(self) -> str:
        lines = '\n'.join(json.dumps(e) for e in self.events)
        return (f'node exit={self.proc.returncode}\n--- stdout ---\n{lines}\n{self.noise}\n'
                f'--- stderr ---\n{self.stderr.decode("utf-8", "replace")[-3000:]}')

    async def wait_for(self, predicate: Callable[[dict], bool], what: str,
                       timeout: float = WAIT) -> dict:
        """The first event matching ``predicate``, waiting (bounded) for it to be printed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for _ in range(int(timeout / 0.01) + 1):
            for event in self.events:
                if predicate(event):
                    return event
            if self.proc.returncode is not None and all(r.done() for r in self._readers):
                break
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.01)
        raise AssertionError(f'node never printed {what}\n{self.describe()}')

    async def finish(self, timeout: float = NODE_TIMEOUT) -> int:
        """Wait (bounded) for the script to exit and its output to be read; its exit code."""
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
            await asyncio.wait_for(asyncio.gather(*self._readers), 5)
        except asyncio.TimeoutError:
            raise AssertionError(f'node did not exit in {timeout} s\n{self.describe()}') from None
        return self.proc.returncode

    async def close(self) -> None:
        """Kill the process if it still runs; reap it and its pipe readers."""
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:   # pragma: no cover - exited just now
                pass
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        finally:
            for reader in self._readers:
                if not reader.done():
                    reader.cancel()
            await asyncio.gather(*self._readers, return_exceptions=True)

    # --- views of the events -------------------------------------------------------------------
    def of(self, ev: str, **match: Any) -> list[dict]:
        return [e for e in self.events
                if e['ev'] == ev and all(e.get(k) == v for k, v in match.items())]

    def one(self, ev: str, **match: Any) -> dict:
        found = self.of(ev, **match)
        assert len(found) == 1, f'expected one {ev} {match}, got {found}\n{self.describe()}'
        return found[0]

    def index(self, ev: str, **match: Any) -> int:
        for i, e in enumerate(self.events):
            if e['ev'] == ev and all(e.get(k) == v for k, v in match.items()):
                return i
        raise AssertionError(f'no {ev} {match}\n{self.describe()}')

    def received(self, ns: str) -> list[tuple[str, list]]:
        """(event, args) of every event the socket of ``ns`` received (socket.onAny)."""
        return [(e['event'], e['args']) for e in self.of('event', ns=ns)]


def b(data: bytes) -> dict:
    """How the node scripts print binary."""
    return {'$bin': data.hex()}


# --- the server ---------------------------------------------------------------------------------
def build_server(server_class: type) -> tuple[socketio.AsyncServer, list[tuple]]:
    """A server with the handlers scenario.mjs talks to, and the list they record into."""
    sio = server_class(async_mode='asgi')
    seen: list[tuple] = []

    @sio.event
    async def connect(sid, environ, auth):
        seen.append(('connect', '/', sid, auth))
        await sio.save_session(sid, {'user': auth.get('user')})

    @sio.event
    async def disconnect(sid, reason):
        seen.append(('disconnect', '/', sid, reason))

    @sio.on('hello')
    async def hello(sid, *args):
        seen.append(('hello', sid, list(args)))

    @sio.on('message')
    async def message(sid, data):
        seen.append(('message', sid, data))

    @sio.on('add')
    async def add(sid, x, y):
        return x + y

    @sio.on('echo')
    async def echo(sid, text, blob):
        seen.append(('echo', sid, text, blob))
        return text.upper(), blob + b'!'

    @sio.on('please')
    async def please(sid, what):
        if what == 'push':
            await sio.emit('server_push', ('payload', {'k': [1, 2]}, 7, b'\x00\xffbin'), to=sid)
            return 'pushed'
        if what == 'call':
            answer = await sio.call('ask', (20, 22), to=sid, timeout=WAIT)
            seen.append(('call_result', sid, answer))

            def callback(*args):
                seen.append(('emit_callback', sid, list(args)))
            await sio.emit('ask_cb', 'shout', to=sid, callback=callback)
            return answer
        if what == 'join':
            await sio.enter_room(sid, 'room-a')
            return sorted(sio.rooms(sid))
        if what == 'rooms':
            await sio.emit('room_news', 'wrong-room', room='room-b')
            await sio.emit('room_news', 'right-room', room='room-a')
            await sio.emit('room_news', 'everyone')
            await sio.emit('room_news', 'skipped', room='room-a', skip_sid=sid)
            await sio.leave_room(sid, 'room-a')
            await sio.emit('room_news', 'after-leave', room='room-a')
            await sio.emit('room_news', 'direct', to=sid)
            return 'rooms-done'
        if what == 'whoami':
            return await sio.get_session(sid)
        if what == 'transport':
            return sio.transport(sid)
        return f'unknown request {what!r}'

    @sio.on('*')
    async def catch_all(event, sid, *args):
        seen.append(('catch_all', event, sid, list(args)))
        return ['caught', event, *args]

    @sio.on('connect', namespace='/chat')
    async def chat_connect(sid, environ, auth):
        seen.append(('connect', '/chat', sid, auth))

    @sio.on('disconnect', namespace='/chat')
    async def chat_disconnect(sid, reason):
        seen.append(('disconnect', '/chat', sid, reason))

    @sio.on('msg', namespace='/chat')
    async def chat_msg(sid, text):
        await sio.emit('chat_news', f'news: {text}', namespace='/chat')
        return f'chat got {text}'

    @sio.on('kick_me', namespace='/chat')
    async def kick_me(sid):
        await sio.disconnect(sid, namespace='/chat')

    @sio.on('connect', namespace='/private')
    async def private_connect(sid, environ, auth):
        seen.append(('connect', '/private', sid, auth))
        raise socketio.exceptions.ConnectionRefusedError('nope', {'code': 7})

    return sio, seen


def only(seen: list[tuple], kind: str, *prefix: Any) -> list[tuple]:
    return [s for s in seen if s[0] == kind and s[1:1 + len(prefix)] == prefix]


# --- the tests ----------------------------------------------------------------------------------
@pytest.mark.timeout(NPM_TIMEOUT + 60)
@pytest.mark.parametrize('transport', ['default', 'websocket', 'polling'])
@pytest.mark.parametrize('server_class', SERVERS)
async def test_node_client_scenario(node_client, server_class, transport):
    sio, seen = build_server(server_class)
    async with serve_socketio(sio) as port:
        node = await NodeScript.start(node_client['node'], 'scenario.mjs',
                                      f'http://127.0.0.1:{port}', transport)
        try:
            code = await node.finish()
            # The server's '/' disconnect handler may run just after the client has closed.
            await until(lambda: only(seen, 'disconnect', '/'), WAIT,
                        what="the '/' disconnect handler")
        finally:
            await node.close()
        if isinstance(sio, relio.AsyncServer):
            assert sio.relio_sessions == 0      # a plain client never gets a relio session

    info = node.describe()
    assert code == 0, info
    assert node.noise == [], info
    assert node.of('fail') == [] and node.of('watchdog') == [], info
    assert node.of('manager_error') == [], info
    assert node.events[-1]['ev'] == 'done', info

    # Transports: polling then the upgrade, websocket only, polling only; the server agrees.
    first, final = {'default': ('polling', 'websocket'), 'websocket': ('websocket', 'websocket'),
                    'polling': ('polling', 'polling')}[transport]
    assert node.one('open')['transport'] == first, info
    if transport == 'default':
        assert node.one('upgrade')['transport'] == 'websocket', info
    else:
        assert node.of('upgrade') == [], info
    assert node.one('transport')['name'] == final, info
    assert node.one('ack', name='please', value=final), info

    # Connect with auth: the handlers got the auth objects exactly as sent; ids match the sids.
    root_sid = node.one('connect', ns='/')['id']
    chat_sid = node.one('connect', ns='/chat')['id']
    assert root_sid and chat_sid and root_sid != chat_sid
    assert only(seen, 'connect', '/') == [
        ('connect', '/', root_sid, {'token': 'tok-root', 'user': 'ada'})]
    assert only(seen, 'connect', '/chat') == [
        ('connect', '/chat', chat_sid, {'token': 'tok-chat', 'n': 2})]
    (private,) = only(seen, 'connect', '/private')
    assert private[3] == {'token': 'bad'}
    assert node.one('connect_error', ns='/private') == {
        'ev': 'connect_error', 'ns': '/private', 'message': 'nope', 'data': {'code': 7}}, info
    assert node.of('connect', ns='/private') == [], info
    # The CONNECT replies carry exactly python-socketio's {'sid': ...}: no relio handshake.
    assert [(e['ns'], e['data']) for e in node.of('connect_packet')] == [
        ('/', {'sid': root_sid}), ('/chat', {'sid': chat_sid})], info

    # Client emit -> server handler: string, dict, numbers, binary Buffer; send() -> 'message'.
    assert only(seen, 'hello') == [('hello', root_sid, [
        'text', {'a': 1, 'nested': [1, 'two', None, True]}, 42, -7, 3.5, b'\x00\x01\x02\xff'])]
    assert only(seen, 'message') == [('message', root_sid, 'plain message')]

    # Client acks: emitWithAck and emit(..., callback) get the handler's return value(s).
    assert node.one('ack', name='add')['value'] == 5
    assert node.one('ack', name='echo')['value'] == ['PING', b(b'bin!')]
    assert only(seen, 'echo') == [('echo', root_sid, 'ping', b'bin')]

    # Server emit -> client, with binary; it arrives before the ack of the handler that sent it.
    pushes = [args for event, args in node.received('/') if event == 'server_push']
    assert pushes == [['payload', {'k': [1, 2]}, 7, b(b'\x00\xffbin')]], info
    assert node.index('event', ns='/', event='server_push') < node.index('ack', value='pushed')

    # Server call() -> the client's ack; server emit(callback=) -> two ack args, one binary.
    assert only(seen, 'call_result') == [('call_result', root_sid, {'sum': 42, 'product': 440})]
    assert node.one('ack', name='please', value={'sum': 42, 'product': 440}), info
    assert only(seen, 'emit_callback') == [('emit_callback', root_sid, ['SHOUT', b'\x09\x08\x07'])]
    asks = [(event, args) for event, args in node.received('/') if event.startswith('ask')]
    assert asks == [('ask', [20, 22, '$fn']), ('ask_cb', ['shout', '$fn'])], info

    # Rooms: enter_room, room/skip_sid/leave_room targeting, namespace-wide broadcast.
    assert node.one('ack', name='please', value=sorted([root_sid, 'room-a'])), info
    news = [args for event, args in node.received('/') if event == 'room_news']
    assert news == [['right-room'], ['everyone'], ['direct']], info
    assert node.one('ack', name='please', value='rooms-done'), info

    # Session saved in the connect handler.
    assert node.one('ack', name='please', value={'user': 'ada'}), info

    # Catch-all: a fire-and-forget event and one with an ack (the catch-all's return value).
    assert only(seen, 'catch_all') == [
        ('catch_all', 'no_such_event', root_sid, [{'z': 1}]),
        ('catch_all', 'unknown_with_ack', root_sid, ['x', 1])]
    assert node.one('ack', name='unknown_with_ack')['value'] == ['caught', 'unknown_with_ack',
                                                                  'x', 1]

    # Second namespace: its ack, its broadcast reaches only the /chat socket.
    assert node.one('ack', ns='/chat', name='msg')['value'] == 'chat got hi chat'
    assert node.received('/chat') == [('chat_news', ['news: hi chat'])], info

    # Server disconnect(sid) -> 'io server disconnect'; client disconnect -> 'client disconnect'.
    assert node.one('disconnect', ns='/chat')['reason'] == 'io server disconnect', info
    assert only(seen, 'disconnect', '/chat') == [('disconnect', '/chat', chat_sid,
                                                  sio.reason.SERVER_DISCONNECT)]
    assert node.one('disconnect', ns='/')['reason'] == 'io client disconnect', info
    assert only(seen, 'disconnect', '/') == [('disconnect', '/', root_sid, 'client disconnect')]

    # Nothing else reached the client: every event it received is one the test sent.
    assert {event for event, _ in node.received('/')} == {
        'server_push', 'ask', 'ask_cb', 'room_news'}, info


@pytest.mark.timeout(NPM_TIMEOUT + 60)
async def test_node_and_relio_client_share_a_room(node_client):
    """A relio.AsyncClient and the Node client in one room of a relio server get the same
    broadcasts; the Python one has a relio session, the Node one stays plain Socket.IO."""
    sio = relio.AsyncServer(async_mode='asgi')
    seen: list[tuple] = []

    @sio.event
    async def connect(sid, environ, auth):
        seen.append(('connect', sid, auth))
        await sio.enter_room(sid, 'mixed')

    @sio.event
    async def disconnect(sid, reason):
        seen.append(('disconnect', sid, reason))

    @sio.on('shout')
    async def shout(sid, text, blob):
        seen.append(('shout', sid, text, blob))
        delivery = await sio.emit('echoed', {'text': text, 'blob': blob}, room='mixed')
        seen.append(('echoed_delivery', delivery))

    py_got: list[tuple] = []
    client = relio.AsyncClient()

    @client.on('news')
    async def on_news(item):
        py_got.append(('news', item))

    @client.on('echoed')
    async def on_echoed(item):
        py_got.append(('echoed', item))

    async with serve_socketio(sio) as port:
        url = f'http://127.0.0.1:{port}'
        node = None
        try:
            await asyncio.wait_for(client.connect(url, auth={'who': 'python'}), WAIT)
            node = await NodeScript.start(node_client['node'], 'mixed.mjs', url)
            await until(lambda: len(only(seen, 'connect')) == 2, WAIT, what='both connects')
            sids = {s[2]['who']: s[1] for s in only(seen, 'connect')}
            assert set(sids) == {'python', 'node'}
            py_sid, node_sid = sids['python'], sids['node']
            assert client.get_sid() == py_sid
            await until(lambda: sio.manager.is_connected(node_sid, '/'), WAIT,
                        what='node connected')
            assert sorted(sio.manager.get_participants('/', 'mixed')) == sorted(
                [(py_sid, sio.manager.eio_sid_from_sid(py_sid, '/')),
                 (node_sid, sio.manager.eio_sid_from_sid(node_sid, '/'))])

            # One broadcast to the room: the relio client acknowledges it (awaiting the Delivery
            # returns), the Node client is counted as unconfirmed (plain Socket.IO).
            delivery = await sio.emit('news', {'n': 1, 'blob': b'\x01\x02'}, room='mixed')
            assert delivery.unconfirmed == 1
            assert await asyncio.wait_for(delivery, WAIT) is None

            code = await node.finish()
            await until(lambda: len(py_got) == 2, WAIT, what='the relio client got both broadcasts')
            await until(lambda: only(seen, 'disconnect'), WAIT, what="the node client's disconnect")
            info = node.describe()
            assert code == 0, info
            assert node.events[-1]['ev'] == 'done', info

            # Both clients got both broadcasts, with the same contents.
            news = {'n': 1, 'blob': b'\x01\x02'}
            echoed = {'text': 'node saw 1', 'blob': b'\x04\x02'}
            assert py_got == [('news', news), ('echoed', echoed)]
            assert node.received('/') == [
                ('news', [{'n': 1, 'blob': b(b'\x01\x02')}]),
                ('echoed', [{'text': 'node saw 1', 'blob': b(b'\x04\x02')}])], info
            assert only(seen, 'shout') == [('shout', node_sid, 'node saw 1', b'\x04\x02')]
            (echo_delivery,) = [s[1] for s in only(seen, 'echoed_delivery')]
            assert echo_delivery.unconfirmed == 1
            assert await asyncio.wait_for(echo_delivery, WAIT) is None

            # The Python client has a relio session (it acknowledged both messages); the Node
            # client has none and left with python-socketio's reason.
            stats = sio.session_stats(py_sid)
            assert stats is not None and stats['messages_delivered'] == 2, stats
            assert client.session_stats() is not None
            assert sio.session_stats(node_sid) is None
            assert only(seen, 'disconnect') == [('disconnect', node_sid, 'client disconnect')]
            assert node.one('disconnect', ns='/')['reason'] == 'io client disconnect', info
            assert node.one('connect_packet') == {'ev': 'connect_packet', 'ns': '/',
                                                  'data': {'sid': node_sid}}, info
            assert sio.relio_sessions == 1
        finally:
            if node is not None:
                await node.close()
            await client.disconnect()
        await until(lambda: sio.relio_sessions == 0, WAIT, what='the relio session to end')
        assert only(seen, 'disconnect', py_sid) == [('disconnect', py_sid, 'client disconnect')]


@pytest.mark.timeout(NPM_TIMEOUT + 60)
def test_pinned_client_version(node_client):
    """Report which socket.io-client the compatibility tests ran (the pinned 4.x)."""
    assert node_client['version'] == _pinned_version() == _installed_version()
    assert node_client['version'].split('.')[0] == '4'
