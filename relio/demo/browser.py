"""``python -m relio demo --browser``: the flaky-link comparison in a browser tab.

A ``relio.AsyncServer`` on 127.0.0.1 (aiohttp) serves a page and relio-client's browser bundle
(``js/dist/relio-client.min.js`` from the checkout: ``cd js && npm ci && npm run build``). The page
runs two clients side by side, socket.io-client (the bundle's ``relio.plainIo``) and relio-client
(``relio.io``), both connected through the same :class:`~relio.demo.faultproxy.FaultProxy`, which
cuts the link every ``CUT_EVERY`` seconds. Each client emits numbered ``tick`` events and the server
emits numbered ``news`` events to each client's room; the page shows, per client, what arrived,
what was lost, duplicated or reordered, and how often the link dropped. The app code is the same
for both clients, except that the plain one joins its room again after every reconnect.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

import relio
from relio.demo.faultproxy import FaultProxy

HOST = "127.0.0.1"
BUNDLE = Path(__file__).resolve().parents[2] / "js" / "dist" / "relio-client.min.js"
MESSAGES = 2000          # numbered events each way, per client
PACE = 0.005             # seconds between two numbered events
CUT_EVERY = 1.2          # seconds between two cuts of the link

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>relio demo: socket.io-client vs relio-client on a flaky link</title>
<style>
 body { font: 15px/1.4 system-ui, sans-serif; margin: 2em; }
 table { border-collapse: collapse; } td, th { padding: .3em 1em; border-bottom: 1px solid #ddd; }
 td { text-align: right; font-variant-numeric: tabular-nums; }
 .bad { color: #b00; } .good { color: #070; }
</style>
<h1>socket.io-client vs relio-client, same server, same flaky link</h1>
<p>Both clients talk to one <code>relio.AsyncServer</code> through a proxy that cuts the connection
every CUT_EVERY s. Each emits MESSAGES numbered events and receives MESSAGES from the server.
<button id="again">Run again</button></p>
<table id="table"></table>
<script src="/relio-client.min.js"></script>
<script>
const N = MESSAGES, PACE_MS = PACE_SECONDS * 1000, LINK = "LINK_URL";
const run = Math.random().toString(36).slice(2, 8);
const rows = ["sent by the page", "server got", "lost on the way up", "duplicated on the way up",
              "received by the page", "lost on the way down", "duplicated on the way down",
              "reordered on the way down", "link drops seen", "session ids"];
const clients = {};
function client(kind, io) {
  const name = kind + "-" + run;
  const s = io(LINK, { reconnectionDelay: 200, reconnectionDelayMax: 1000 });
  const c = clients[kind] = { name, socket: s, sent: 0, got: [], drops: 0, ids: new Set(),
                              server: [] };
  // the same app code for both; a plain client must join its room again after each reconnect
  s.on("connect", () => { c.ids.add(s.id); s.emit("hello", name); });
  s.on("disconnect", () => c.drops++);
  s.on("connect_error", (err) => console.log(kind + " connect_error: " + err.message));
  s.on("relio_suspend", () => c.drops++);
  s.on("news", (n) => c.got.push(n));
  (async () => {
    await new Promise((r) => s.once("connect", r));
    for (let i = 0; i < N; i++) {
      s.emit("tick", name, i);
      c.sent++;
      await new Promise((r) => setTimeout(r, PACE_MS));
    }
  })();
}
function stats(seq) {
  const seen = new Set(); let dup = 0, reordered = 0, last = -1;
  for (const n of seq) {
    if (seen.has(n)) dup++;
    seen.add(n);
    if (n < last) reordered++;
    last = Math.max(last, n);
  }
  return { lost: N - seen.size, dup, reordered };
}
const direct = relio.plainIo(location.origin);   // not through the proxy: reads the server's counts
function cell(v, good) {
  return `<td class="${good === undefined ? "" : good ? "good" : "bad"}">${v}</td>`;
}
async function render(final) {
  const out = {};
  for (const kind of ["plain", "relio"]) {
    const c = clients[kind];
    c.server = await direct.emitWithAck("ticks", c.name);
    const up = stats(c.server), down = stats(c.got);
    out[kind] = [c.sent, c.server.length, [up.lost, !up.lost], [up.dup, !up.dup], c.got.length,
                 [down.lost, !down.lost], [down.dup, !down.dup], [down.reordered, !down.reordered],
                 c.drops, [c.ids.size, c.ids.size === 1]];
  }
  let html = "<tr><th></th><th>socket.io-client</th><th>relio-client</th></tr>";
  rows.forEach((label, i) => {
    html += `<tr><th>${label}</th>` + ["plain", "relio"].map((k) => {
      const v = out[k][i]; return Array.isArray(v) ? cell(v[0], final ? v[1] : undefined) : cell(v);
    }).join("") + "</tr>";
  });
  document.getElementById("table").innerHTML = html;
  if (final) console.log(JSON.stringify({ ev: "report", ...out }));
}
document.getElementById("again").onclick = () => location.reload();
client("plain", relio.plainIo);
client("relio", relio.io);
const started = Date.now(), expected = N * PACE_MS + 4000;
const timer = setInterval(async () => {
  // final once relio-client has everything both ways (what socket.io-client lost stays lost),
  // or after 30 s more
  const r = clients.relio, late = Date.now() - started;
  const complete = r.got.length >= N && r.server.length >= N;
  const final = late > expected && (complete || late > expected + 30000);
  await render(final);
  if (final) clearInterval(timer);
}, 300);
</script>
"""


def make_server(messages: int = MESSAGES) -> relio.AsyncServer:
    # a short heartbeat, as in the other demo: a connection the cut left half-open is noticed soon
    sio = relio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", ping_interval=1,
                            ping_timeout=1)
    ticks: dict[str, list[int]] = {}
    streams: set[str] = set()
    tasks: set[asyncio.Task] = set()        # the streams' tasks, referenced while they run

    @sio.on("hello")
    async def hello(sid, name):
        await sio.enter_room(sid, name)
        if name not in streams:
            streams.add(name)
            task = asyncio.create_task(stream(name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def stream(name):
        for i in range(messages):
            await sio.emit("news", i, room=name)
            await asyncio.sleep(PACE)

    @sio.on("tick")
    async def tick(sid, name, i):
        ticks.setdefault(name, []).append(i)

    @sio.on("ticks")
    async def get_ticks(sid, name):
        return ticks.get(name, [])

    return sio


async def start(port: int = 0, messages: int = MESSAGES) -> tuple[web.AppRunner, FaultProxy, str]:
    """Start the server and the flaky link (not its cuts: :func:`cut_forever`); returns them and
    the page's URL. The page logs its final table to the console as JSON (``{"ev": "report"}``)."""
    if not BUNDLE.is_file():
        raise FileNotFoundError(
            f"{BUNDLE} is missing: build relio-client first (cd js && npm ci && npm run build)")
    sio = make_server(messages)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    proxy_box: dict[str, FaultProxy] = {}

    async def page(request: web.Request) -> web.Response:
        text = (PAGE.replace("MESSAGES", str(messages)).replace("CUT_EVERY", str(CUT_EVERY))
                .replace("PACE_SECONDS", str(PACE)).replace("LINK_URL", proxy_box["p"].url))
        return web.Response(text=text, content_type="text/html")

    async def bundle(request: web.Request) -> web.FileResponse:
        return web.FileResponse(BUNDLE, headers={"Content-Type": "text/javascript"})

    app.router.add_get("/", page)
    app.router.add_get("/relio-client.min.js", bundle)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    server_port = runner.addresses[0][1]
    proxy = await FaultProxy(server_port).start()
    proxy_box["p"] = proxy
    return runner, proxy, f"http://{HOST}:{server_port}/"


async def cut_forever(proxy: FaultProxy) -> None:
    while True:
        await asyncio.sleep(CUT_EVERY)
        await proxy.cut()


async def serve(port: int = 0) -> None:
    runner, proxy, url = await start(port)
    print(f"relio demo in the browser: open {url}  (Ctrl-C to stop)", flush=True)
    try:
        await cut_forever(proxy)
    finally:
        await proxy.close()
        await runner.cleanup()


def main(port: int = 0) -> int:
    try:
        asyncio.run(serve(port))
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


__all__ = ["main", "start", "cut_forever", "make_server", "PAGE"]
