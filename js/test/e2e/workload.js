// The workload the end-to-end tests run, in Node (workload-node.mjs) and in Chromium (page.html),
// against relio.AsyncServer through the fault proxy (tests/test_js_client.py drives the faults).
// Both ways: numbered emits, concurrent emitWithAck, a big binary; the server's side of it is in
// tests/test_js_client.py. `log(ev, fields)` reports observations; the run ends with a `report`.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function sha256(bytes) {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Deterministic bytes (the server builds the same): byte i = (i * 31 + 7) & 0xff. */
export function pattern(size) {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

function toBytes(value) {
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * @param io      relio-client's io (or socket.io-client's, for the comparison run)
 * @param url     the server (through the proxy)
 * @param p       {count, asks, bigSize, ioOptions, deadlineMs}
 * @param log     (ev, fields) => void
 */
export async function run(io, url, p, log) {
  const socket = io(url, { reconnectionDelay: 100, reconnectionDelayMax: 500, ...p.ioOptions });
  const seen = { connect: 0, suspend: 0, resume: 0, disconnect: 0, ids: new Set() };
  const received = [];                 // the server's numbered emits, in arrival order
  let bigDown = null;
  socket.on("connect", () => {
    seen.connect++;
    seen.ids.add(socket.id);
    log("connect", { id: socket.id });
  });
  socket.on("relio_suspend", (reason) => { seen.suspend++; log("suspend", { reason }); });
  socket.on("relio_resume", () => { seen.resume++; seen.ids.add(socket.id); log("resume", { id: socket.id }); });
  socket.on("disconnect", (reason) => { seen.disconnect++; log("disconnect", { reason }); });
  socket.on("srv", (n) => received.push(n));
  socket.on("big", async (blob, ack) => {
    const bytes = toBytes(blob);
    bigDown = { size: bytes.length, sha: await sha256(bytes) };
    ack(bigDown.size);
  });
  socket.on("chain_q", (q, ack) => ack(q + 1));

  // emits made before the connection is up (before anyone knows if the server speaks relio)
  for (let i = 0; i < (p.early ?? 5); i++) socket.emit("early", i);
  await new Promise((resolve) => socket.once("connect", resolve));
  const firstId = socket.id;
  socket.emit("start", p.count, p.bigSize);

  // numbered emits, while concurrent emitWithAck requests run
  const asks = [];
  for (let i = 0; i < p.asks; i++) asks.push(socket.emitWithAck("ask", i));
  const bigUp = pattern(p.bigSize);
  const bigAck = p.bigSize ? socket.emitWithAck("big", bigUp) : Promise.resolve(null);
  for (let i = 0; i < p.count; i++) {
    socket.emit("num", i);
    if (i % 20 === 19) await sleep(p.pauseMs ?? 5);
  }
  const chained = !p.chain ? Promise.resolve(null) : new Promise((resolve) => {
    socket.emit("chain", 10, (offer, respond) => respond(offer.price + 1, (final) => resolve(final)));
  });
  // a Blob (browsers): read asynchronously, yet sent in its place in the order of emits
  const blobSize = p.blob ? socket.emitWithAck("blobsize", new Blob([pattern(1000), "tail"])) : null;
  const answers = await Promise.all(asks);
  const bigUpAnswer = await bigAck;
  const chainFinal = await chained;
  const deadline = Date.now() + p.deadlineMs;
  while ((received.length < p.count || (p.bigSize && bigDown === null)) && Date.now() < deadline) {
    await sleep(20);
  }
  const delivered = socket.emitWithDelivery ? await socket.emitWithDelivery("num", p.count) : null;
  const report = {
    relio: socket.relio === true, firstId, ids: [...seen.ids], connect: seen.connect,
    suspend: seen.suspend, resume: seen.resume, disconnect: seen.disconnect,
    received, answers, bigUp: bigUpAnswer, bigUpSha: p.bigSize ? await sha256(bigUp) : null,
    bigDown, chainFinal, delivered, blobSize: await blobSize,
  };
  log("report", report);
  socket.disconnect();
  return report;
}
