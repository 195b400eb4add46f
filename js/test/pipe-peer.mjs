// node pipe-peer.mjs: relio-client's Engine as a peer driven over stdin/stdout, one JSON command
// per line and one JSON answer per line, for tests/test_js_engine_pipe.py, which joins it to the
// Python reference engine over a lossy link. Every request received is answered "re:<payload>".
import { createInterface } from "node:readline";
import { Engine, DEFAULT_CONFIG, makeConfig } from "../dist/esm/index.js";

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const unb64 = (text) => new Uint8Array(Buffer.from(text, "base64"));
let engine = null;
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const cmd = JSON.parse(line);
  const answer = {};
  try {
    switch (cmd.op) {
      case "init":
        engine = new Engine(cmd.config ? makeConfig(cmd.config) : DEFAULT_CONFIG, cmd.now);
        break;
      case "send":
        answer.id = b64(engine.send(unb64(cmd.payload), cmd.now, cmd.request));
        break;
      case "receive":
        engine.receive(unb64(cmd.batch), cmd.now);
        break;
      case "output": {
        const t = engine.getTimer();
        if (t !== null && t <= cmd.now) engine.handleTimer(cmd.now);
        answer.batches = engine.dataToSend(cmd.now).map(b64);
        break;
      }
      case "disconnect":
        engine.disconnect(cmd.now);
        answer.state = b64(engine.resumeState());
        break;
      case "resume":
        engine.resume(unb64(cmd.state), cmd.now);
        break;
    }
  } catch (err) {
    answer.error = String(err && err.message || err);
  }
  const events = [];
  let e;
  while (engine !== null && (e = engine.nextEvent()) !== undefined) {
    if (e.kind === "received") {
      events.push({ kind: e.kind, payload: b64(e.payload), request: e.request });
      if (e.request) {
        const reply = new Uint8Array([...new TextEncoder().encode("re:"), ...e.payload]);
        engine.reply(e.msgId, reply, cmd.now ?? 0);
      }
    } else if (e.kind === "response") {
      events.push({ kind: e.kind, payload: b64(e.payload), replyTo: b64(e.replyTo) });
    } else if (e.kind === "delivered") {
      events.push({ kind: e.kind, count: e.msgIds.length });
    } else {
      events.push({ kind: e.kind, reason: e.reason });
    }
  }
  answer.events = events;
  process.stdout.write(JSON.stringify(answer) + "\n");
}
