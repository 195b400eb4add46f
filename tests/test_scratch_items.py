import asyncio, pytest, relio
from tests.test_sessions_e2e import rig, cut_and_wait_resume, until

@pytest.mark.timeout(30)
async def test_disconnect_from_resume_handler():
    done = asyncio.Event()
    def setup_client(c, rec):
        @c.on('relio_resume')
        async def on_resume():
            rec.add('resume', c.get_sid())
            await c.disconnect()
            done.set()
    async with rig(setup_client=setup_client) as r:
        assert await r.proxy.cut() == 1
        await asyncio.wait_for(done.wait(), 10)
        await until(lambda: r.srec.n('disconnect') == 1, 10, 'server disconnect')
        await until(lambda: r.crec.n('disconnect') == 1, 10, 'client disconnect')
        assert not r.client.connected
        print(r.crec['disconnect'], r.srec['disconnect'])
        assert r.crec['disconnect'][0][0] == 'client disconnect'

@pytest.mark.timeout(30)
async def test_disconnect_reason_after_resume_with_queued_emits():
    async with rig() as r:
        assert await r.proxy.cut() == 1
        await until(lambda: r.crec.n('suspend') == 1, 10, 'suspend')
        for i in range(5):
            await r.client.emit('x', i)
        await until(lambda: r.crec.n('resume') == 1, 10, 'resume')
        await r.client.disconnect()
        await until(lambda: r.crec.n('disconnect') == 1, 10, 'client disconnect')
        print(r.crec['disconnect'])
        assert r.crec['disconnect'][0][0] == 'client disconnect'

@pytest.mark.timeout(30)
async def test_debug_disconnect_from_resume_handler(caplog):
    import logging
    caplog.set_level(logging.INFO)
    done = asyncio.Event()
    def setup_client(c, rec):
        @c.on('relio_resume')
        async def on_resume():
            print('in resume, connecting=', c._relio_connecting, 'task', asyncio.current_task().get_name(), 'eio state', c.eio.state)
            try:
                await c.disconnect()
            except BaseException as e:
                print('raised', repr(e)); raise
            print('after disconnect; connected', c.connected, c.eio.state)
            done.set()
    async with rig(setup_client=setup_client) as r:
        assert await r.proxy.cut() == 1
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.sleep(2)
        print('connected', r.client.connected, r.client.eio.state, r.client.namespaces, r.srec.ev, r.crec.ev)
