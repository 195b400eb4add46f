"""relio-client in a real browser: Debian's headless Chromium (driven by playwright-core from npm;
no browser download) loads a page served by the relio server under test, which runs the standalone
bundle's ``relio.io`` (js/dist/relio-client.min.js) with the end-to-end workload
(js/test/e2e/workload.js) through the fault proxy, which cuts the link several times. Same
assertions as the Node run (tests/test_js_client.py), plus a Blob sent in its place in the order.

Chromium missing is a failure, not a skip: install it with ``apt-get install -y chromium`` (the
CI script does), or point ``RELIO_CHROMIUM`` at a Chromium binary.
"""
from __future__ import annotations

import socketio

from relio.demo.faultproxy import FaultProxy
from tests.support.jsclient import (  # noqa: F401  (browser_node: the fixture)
    JS_DIR,
    browser_node,
    check_relio_report,
    run_script,
    workload_server,
)
from tests.support.servers import start_asgi

E2E = JS_DIR / 'test' / 'e2e'


def page_app(sio: socketio.AsyncServer) -> socketio.ASGIApp:
    """The relio server's ASGI app, also serving the test page, the bundle and the workload."""
    return socketio.ASGIApp(sio, static_files={
        '/': str(E2E / 'page.html'),
        '/relio-client.min.js': str(JS_DIR / 'dist' / 'relio-client.min.js'),
        '/workload.js': {'filename': str(E2E / 'workload.js'),
                         'content_type': 'text/javascript'},
        '/reload.js': {'filename': str(E2E / 'reload.js'), 'content_type': 'text/javascript'},
    })


async def test_browser_workload_through_cuts(browser_node):  # noqa: F811
    count, asks, big = 2000, 64, 20 * 1024 * 1024
    sio, seen = workload_server(max_http_buffer_size=1_000_000)
    server = await start_asgi(page_app(sio))
    try:
        async with FaultProxy(server.port) as proxy:
            report, events, stderr, hits = await run_script(
                browser_node, E2E / 'browser.mjs', proxy.url + '/', {
                    'count': count, 'asks': asks, 'bigSize': big, 'chain': True, 'blob': True,
                    'deadlineMs': 60000}, times=8, every=0.4, proxy=proxy)
    finally:
        await sio.shutdown()
        await server.stop()
    detail = f'{events[-20:]}\n{stderr[-3000:]}'
    assert report is not None, detail
    assert hits >= 1, 'no cut hit a live connection: the faults did not happen'
    assert report['suspend'] >= 1, detail
    print(f"cuts that hit a connection: {hits}, suspends: {report['suspend']}")
    assert report['blobSize'] == 1004
    check_relio_report(report, seen, count=count, asks=asks, big_size=big)


async def test_browser_reload_resumes_the_session_with_persistence(browser_node):  # noqa: F811
    """`relio: {persist: true}`: the page reloads itself halfway through a stream of numbered emits
    both ways; the reloaded page resumes the same session from sessionStorage. Every emit of
    either page reaches the server once and in order, every server emit reaches one of the pages
    once and in order, and both pages have the same socket.id."""
    count = 600
    sio, seen = workload_server()
    server = await start_asgi(page_app(sio))
    try:
        async with FaultProxy(server.port) as proxy:
            report, events, stderr, _ = await run_script(
                browser_node, E2E / 'browser.mjs', proxy.url + '/', {
                    'module': '/reload.js', 'count': count, 'deadlineMs': 30000},
                times=0, every=0.1, proxy=proxy)
    finally:
        await sio.shutdown()
        await server.stop()
    detail = f'{events[-20:]}\n{stderr[-3000:]}'
    assert report is not None, detail
    reloading = [e for e in events if e['ev'] == 'reloading']
    assert reloading, detail
    assert 0 < reloading[0]['received'] < count, \
        f'the reload did not happen mid-stream: {reloading}'
    print(f'reloaded after {reloading[0]["emitted"]} emits, {reloading[0]["received"]} received')
    assert report['loads'] == 2
    assert report['relio'] is True and report['delivered'] is True
    assert len(report['ids']) == 2 and len(set(report['ids'])) == 1, report['ids']
    assert report['recovered'] == [False, True]
    assert report['received'] == list(range(count)), 'server -> page emits lost or twice'
    assert seen.nums == list(range(count + 1)), 'page -> server emits lost or twice'
