// The TypeScript engine against itself over a scripted link (h11's ConnectionPair, aioquic's
// roundtrip helpers): a fake clock, batches dropped, duplicated and reordered, links cut and
// resumed. Whatever the link does, every message is delivered exactly once and in order, each
// request is answered once, and every sender learns its messages were delivered.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Engine, DEFAULT_CONFIG, makeConfig, RemoteProtocolError } from "../dist/esm/index.js";

function rng(seed) {               // mulberry32: reproducible runs
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const enc = (text) => new TextEncoder().encode(text);
const dec = (bytes) => new TextDecoder().decode(bytes);

class Pair {
  constructor(seed, config = DEFAULT_CONFIG) {
    this.random = rng(seed);
    this.now = 0;
    this.a = new Engine(config, 0);
    this.b = new Engine(config, 0);
    this.got = { a: [], b: [] };
    this.delivered = { a: 0, b: 0 };
    this.responses = { a: [], b: [] };
    this.loss = 0;
  }

  drain(name, engine, peer) {
    let e;
    while ((e = engine.nextEvent()) !== undefined) {
      if (e.kind === "received") {
        this.got[name].push(dec(e.payload));
        if (e.request) engine.reply(e.msgId, enc("re:" + dec(e.payload)), this.now);
      } else if (e.kind === "response") this.responses[name].push(dec(e.payload));
      else if (e.kind === "delivered") this.delivered[name] += e.msgIds.length;
      else if (e.kind === "expired" || e.kind === "closed") throw new Error(`${name}: ${e.kind} ${e.reason}`);
    }
    void peer;
  }

  /** One round: both sides send; each batch may be lost, duplicated or delayed a round. */
  step(lossy) {
    const late = [];
    for (const [from, to, name] of [[this.a, this.b, "b"], [this.b, this.a, "a"]]) {
      for (const batch of from.dataToSend(this.now)) {
        if (lossy && this.random() < this.loss) continue;
        const copies = lossy && this.random() < 0.1 ? 2 : 1;
        for (let i = 0; i < copies; i++) {
          if (lossy && this.random() < 0.2) late.push([to, batch, name]);
          else to.receive(batch, this.now);
        }
      }
    }
    for (const [to, batch] of late.reverse()) to.receive(batch, this.now);
    this.drain("a", this.a);
    this.drain("b", this.b);
    this.now += 0.005;
    for (const e of [this.a, this.b]) {
      const t = e.getTimer();
      if (t !== null && t <= this.now) e.handleTimer(this.now);
    }
  }

  /** Cut the link and resume it as the Socket.IO binding does (resume states exchanged). */
  cutAndResume() {
    this.a.disconnect(this.now);
    this.b.disconnect(this.now);
    const sa = this.a.resumeState();
    const sb = this.b.resumeState();
    this.a.resume(sb, this.now);
    this.b.resume(sa, this.now);
  }
}

for (const seed of [1, 2, 3, 4, 5]) {
  test(`exactly once, in order, over a lossy link with cuts (seed ${seed})`, () => {
    const p = new Pair(seed, makeConfig({ chunkSize: 1000, maxBatchSize: 4096, coalesceBytes: 3000 }));
    p.loss = 0.15;
    const n = 300;
    const big = "x".repeat(4500);               // 5 chunks
    for (let i = 0; i < n; i++) {
      p.a.send(enc(i % 50 === 7 ? `${i}:${big}` : `${i}`), p.now, i % 10 === 0);
      p.b.send(enc(`b${i}`), p.now);
      if (i % 25 === 0) p.step(true);
      if (i % 97 === 0) p.cutAndResume();
    }
    for (let round = 0; round < 4000 && (p.delivered.a < n + n / 10 || p.delivered.b < n + n / 10); round++) {
      p.step(round < 200);
      if (round % 150 === 149) p.cutAndResume();
    }
    const expectA = Array.from({ length: n }, (_, i) => (i % 50 === 7 ? `${i}:${big}` : `${i}`));
    assert.deepEqual(p.got.b, expectA);
    assert.deepEqual(p.got.a, Array.from({ length: n }, (_, i) => `b${i}`));
    assert.deepEqual(p.responses.a,
      expectA.filter((_, i) => i % 10 === 0).map((t) => "re:" + t));
    assert.equal(p.delivered.a, n);                  // a's messages
    assert.equal(p.delivered.b, n + n / 10);         // b's messages and its replies
  });
}

test("a peer that lost acknowledged frames cannot resume the session", () => {
  const a = new Engine(DEFAULT_CONFIG, 0);
  const b = new Engine(DEFAULT_CONFIG, 0);
  a.send(enc("one"), 0);
  for (const batch of a.dataToSend(0)) b.receive(batch, 0);
  for (const batch of b.dataToSend(1)) a.receive(batch, 1);       // b's ACK
  a.disconnect(1);
  const fresh = new Engine(DEFAULT_CONFIG, 0);                      // b restarted: state lost
  assert.throws(() => a.resume(fresh.resumeState(), 2),
    (err) => err instanceof RemoteProtocolError && err.reason.startsWith("peer lost acknowledged frames"));
  assert.equal(a.closed, true);
});

test("a retried request runs once; its cached response is sent again", () => {
  const a = new Engine(DEFAULT_CONFIG, 0);
  const b = new Engine(DEFAULT_CONFIG, 0);
  const id = a.send(enc("q"), 0, true);
  for (const batch of a.dataToSend(0)) b.receive(batch, 0);
  const first = b.nextEvent();
  assert.equal(first.kind, "received");
  b.reply(first.msgId, enc("answer"), 0);
  for (const batch of b.dataToSend(0)) a.receive(batch, 0);
  assert.equal(a.nextEvent().kind, "delivered");
  assert.equal(a.nextEvent().kind, "response");
  for (const batch of a.dataToSend(1)) b.receive(batch, 1);       // a's ACK: the response is delivered
  while (b.nextEvent() !== undefined);
  // the application sends the request again with its id (e.g. after an expiry)
  const again = new Engine(DEFAULT_CONFIG, 0);
  again.send(enc("q"), 0, true, id);
  for (const batch of again.dataToSend(2)) b.receive(batch, 2);
  assert.equal(b.nextEvent(), undefined, "the handler must not run twice");
  const resent = b.dataToSend(2);
  assert.ok(resent.length === 1, "the cached response goes out again");
});

test("CLOSE from the peer ends the session and expires what is pending", () => {
  const a = new Engine(DEFAULT_CONFIG, 0);
  const b = new Engine(DEFAULT_CONFIG, 0);
  b.send(enc("never acked"), 0);
  b.dataToSend(0);
  a.close("bye", 0);
  for (const batch of a.dataToSend(0)) b.receive(batch, 0);
  const events = [];
  let e;
  while ((e = b.nextEvent()) !== undefined) events.push(e);
  assert.deepEqual(events.map((x) => x.kind), ["expired", "closed"]);
  assert.equal(events[1].reason, "closed by peer: bye");
  assert.equal(events[1].byPeer, true);
});

test("a full outbox refuses a message with QueueFull (never a silent loss), and frees room on delivery", async () => {
  const { QueueFull } = await import("../dist/esm/index.js");
  const a = new Engine(makeConfig({ maxOutboxMessages: 3 }), 0);
  const b = new Engine(DEFAULT_CONFIG, 0);
  for (let i = 0; i < 3; i++) a.send(enc(`m${i}`), 0);
  assert.throws(() => a.send(enc("m3"), 0), QueueFull);
  assert.equal(a.outboxMessages, 3);
  for (const batch of a.dataToSend(0)) b.receive(batch, 0);
  for (const batch of b.dataToSend(1)) a.receive(batch, 1);
  assert.equal(a.nextEvent().kind, "delivered");
  assert.equal(a.outboxMessages, 0);
  a.send(enc("m3"), 1);
});

test("a session restored from its snapshot (a reloaded page) resumes: exactly once, in order", () => {
  const config = makeConfig({ chunkSize: 1000, maxBatchSize: 4096, coalesceBytes: 3000 });
  const p = new Pair(9, config);
  p.loss = 0.1;
  const n = 200;
  for (let i = 0; i < n; i++) {
    p.a.send(enc(i % 40 === 3 ? `${i}:${"y".repeat(2500)}` : `${i}`), p.now, i % 10 === 0);
    p.b.send(enc(`b${i}`), p.now, i % 15 === 0);
    if (i % 20 === 0) p.step(true);
    if (i % 60 === 30) {
      // the page holding `a` reloads: only its JSON snapshot survives
      const snap = JSON.parse(JSON.stringify(p.a.snapshot(p.now)));
      p.a = Engine.restore(snap, config, p.now + 1000);
      p.b.disconnect(p.now);
      const sa = p.a.resumeState();
      p.a.resume(p.b.resumeState(), p.now);
      p.b.resume(sa, p.now);
    }
  }
  for (let round = 0; round < 4000 && p.got.b.length + p.got.a.length < 2 * n; round++) {
    p.step(round < 100);
  }
  for (let round = 0; round < 100; round++) p.step(false);
  assert.deepEqual(p.got.b, Array.from({ length: n }, (_, i) => (i % 40 === 3 ? `${i}:${"y".repeat(2500)}` : `${i}`)));
  assert.deepEqual(p.got.a, Array.from({ length: n }, (_, i) => `b${i}`));
  assert.equal(p.responses.a.length, n / 10);
  assert.equal(p.responses.b.length, Math.ceil(n / 15));
});
