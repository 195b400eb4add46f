// node bench.mjs <url> <json params>: relio-client against socket.io-client (the baseline) on the
// same relio.AsyncServer (bench/js_client.py starts it): small emits client -> server and
// server -> client, and rounds of 64 concurrent emitWithAck. Prints one JSON line per result.
import { io as relioIo } from "../dist/esm/index.js";
import { io as plainIo } from "socket.io-client";

const [url, paramsText] = process.argv.slice(2);
const p = JSON.parse(paramsText);
const out = (fields) => process.stdout.write(JSON.stringify(fields) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function connect(which) {
  const socket = which === "relio-client"
    ? relioIo(url, { transports: ["websocket"] })
    : plainIo(url, { transports: ["websocket"], forceNew: true });
  await new Promise((resolve) => socket.once("connect", resolve));
  return socket;
}

async function c2s(socket, n) {
  await socket.emitWithAck("b_reset");
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    socket.emit("b_num", i);
    if (i % 1000 === 999) await sleep(0);      // let the transport drain, as an app would
  }
  while ((await socket.emitWithAck("b_count")) < n) await sleep(1);
  return (performance.now() - t0) / 1000;
}

async function s2c(socket, n) {
  let got = 0;
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  const onNum = () => { if (++got === n) done(); };
  socket.on("b_srv", onNum);
  const t0 = performance.now();
  socket.emit("b_stream", n);
  await finished;
  socket.off("b_srv", onNum);
  return (performance.now() - t0) / 1000;
}

async function acks(socket, rounds, width) {
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    const pending = [];
    for (let i = 0; i < width; i++) pending.push(socket.emitWithAck("b_echo", i));
    await Promise.all(pending);
  }
  return (performance.now() - t0) / 1000;
}

for (const which of ["socket.io-client", "relio-client"]) {
  const socket = await connect(which);
  for (let rep = 0; rep < p.repeat; rep++) {
    out({ client: which, workload: "emit_c2s", n: p.emits, seconds: await c2s(socket, p.emits) });
    out({ client: which, workload: "emit_s2c", n: p.emits, seconds: await s2c(socket, p.emits) });
    out({ client: which, workload: "acks_64", n: p.rounds * 64, seconds: await acks(socket, p.rounds, 64) });
  }
  socket.disconnect();
  await sleep(100);
}
process.exit(0);
