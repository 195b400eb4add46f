// The reload workload (tests/test_js_browser.py): with `relio: {persist: true}` the page reloads
// itself in the middle of a stream of numbered emits both ways; the reloaded page resumes the same
// session. The application keeps what it observed in sessionStorage too (its own state), so the
// report covers both pages: nothing lost, nothing twice, same session id.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function run(io, url, p, log) {
  const state = JSON.parse(sessionStorage.getItem("app") ||
    '{"emitted": 0, "received": [], "loads": 0, "ids": [], "recovered": []}');
  state.loads++;
  const save = () => sessionStorage.setItem("app", JSON.stringify(state));
  save();
  const socket = io(url, { reconnectionDelay: 100, reconnectionDelayMax: 500, relio: { persist: true } });
  socket.on("srv", (n) => { state.received.push(n); save(); });
  const connected = new Promise((resolve) => socket.once("connect", resolve));
  socket.on("connect", () => {
    state.ids.push(socket.id);
    state.recovered.push(socket.recovered);
    save();
    log("connect", { id: socket.id, recovered: socket.recovered, loads: state.loads });
  });
  await connected;
  // the server's stream is paced (20 events every 30 ms) so that the reload lands inside it
  if (state.loads === 1) socket.emit("start", p.count, 0, 0.03);
  const reloadAt = Math.floor(p.count / 2);
  while (state.emitted < p.count) {
    socket.emit("num", state.emitted);
    state.emitted++;
    save();
    if (state.loads === 1 && state.emitted === reloadAt) {
      // reload in the middle of the server's stream too
      for (let i = 0; i < 2500 && state.received.length < p.count / 4; i++) await sleep(2);
      log("reloading", { emitted: state.emitted, received: state.received.length });
      location.reload();
      return;
    }
    if (state.emitted % 20 === 0) await sleep(5);
  }
  const deadline = Date.now() + p.deadlineMs;
  while (state.received.length < p.count && Date.now() < deadline) await sleep(20);
  const delivered = await socket.emitWithDelivery("num", p.count);
  log("report", { ...state, relio: socket.relio, delivered });
  socket.disconnect();
}
