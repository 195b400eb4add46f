"""``python -m relio demo --browser``: its page, in headless Chromium, with the link cut every
0.7 s: relio-client's column shows every event both ways delivered once and in order and one
session id. What socket.io-client lost beside it is printed, not asserted (as in test_demo.py)."""
from __future__ import annotations

import asyncio

from relio.demo import browser
from tests.support.jsclient import JS_DIR, browser_node, run_script  # noqa: F401  (the fixture)

MESSAGES = 400


async def test_demo_page_in_chromium(browser_node):  # noqa: F811
    runner, proxy, url = await browser.start(messages=MESSAGES)
    async def cut_often():         # more often than the demo's 1.2 s: the short run sees cuts
        while True:
            await asyncio.sleep(0.7)
            await proxy.cut()
    cutter = asyncio.create_task(cut_often())
    try:
        report, events, stderr, _ = await run_script(
            browser_node, JS_DIR / 'test' / 'e2e' / 'browser.mjs', url, {'deadlineMs': 60000},
            times=0, every=0, proxy=proxy)
    finally:
        print('proxy:', proxy.stats.as_dict(), 'cutter:', cutter.done() and cutter.exception())
        cutter.cancel()
        await proxy.close()
        await runner.cleanup()
    assert report is not None, f'{events[-10:]}\n{stderr[-3000:]}'
    rows = dict(zip(['sent', 'server_got', 'lost_up', 'dup_up', 'received', 'lost_down', 'dup_down',
                     'reordered_down', 'drops', 'ids'], report['relio'], strict=True))
    assert rows['sent'] == rows['server_got'] == rows['received'] == MESSAGES, report
    assert rows['lost_up'] == rows['dup_up'] == rows['lost_down'] == rows['dup_down'] \
        == rows['reordered_down'] == [0, True], report
    assert rows['ids'] == [1, True], report
    assert rows['drops'] >= 1, f'the link was never cut under relio-client: {report}'
    print('socket.io-client beside it:', report['plain'])
