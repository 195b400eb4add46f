// The sans-I/O relio engine (docs/PROTOCOL.md sections 6-9), the TypeScript twin of
// ext/relio/engine/_engine.pyx: no sockets, no timers, no clock. The caller passes `now` (seconds,
// any monotonic origin), feeds received batches to receive(), sends what dataToSend() returns,
// calls handleTimer() at getTimer(), and reads nextEvent().
//
// Sender-local policy that the protocol leaves free (section 12) is kept simple here: no fast
// retransmit (inside one Socket.IO connection nothing is lost; loss is repaired by resume), an
// RTO probe of the oldest frame otherwise.

import { Config, DEFAULT_CONFIG, PROTOCOL } from "./config.js";
import {
  AckFrame, DataFrame, Reader, checkBatchHeader, dataHeaderSize, encodeAck, encodeBatch,
  encodeClose, readAckBody, readFrame, writeData,
} from "./frames.js";
import { IdSet, ResponseCache, idKey } from "./caches.js";
import { LocalProtocolError, QueueFull, RemoteProtocolError } from "./errors.js";

const { flagRequest: REQUEST, flagResponse: RESPONSE, flagChunk: CHUNK } = PROTOCOL;

export type EngineEvent =
  | { kind: "received"; msgId: Uint8Array; payload: Uint8Array; request: boolean }
  | { kind: "response"; msgId: Uint8Array; replyTo: Uint8Array; payload: Uint8Array;
      request: boolean }
  | { kind: "delivered"; msgIds: Uint8Array[] }
  | { kind: "expired"; msgId: Uint8Array; reason: string }
  | { kind: "closed"; reason: string; byPeer: boolean };

/** One message of ours, accepted and not yet wholly acknowledged. */
interface OutMessage {
  id: Uint8Array;
  key: string;
  flags: number;          // without CHUNK
  replyTo: Uint8Array | null;
  payload: Uint8Array;
  chunked: boolean;
  frames: number;         // how many DATA frames it takes
  framed: number;         // payload bytes already given a seq
  acked: number;          // frames acknowledged
  acceptedAt: number;
  requestKey: string | null;   // a response: the request it answers (response cache key)
}

/** One DATA frame in flight (sent, not acknowledged). */
interface SentFrame {
  seq: number;
  msg: OutMessage;
  offset: number;
  length: number;
  sentAt: number;
  transmissions: number;
  queued: boolean;        // in the retransmission queue
}

/** The in-order chunk stream: the chunked message being delivered. */
interface Reassembly {
  key: string;
  id: Uint8Array;
  total: number;
  parts: Uint8Array[];
  received: number;
}

function randomPrefix(): Uint8Array {
  const prefix = new Uint8Array(8);
  globalThis.crypto.getRandomValues(prefix);
  return prefix;
}

export class Engine {
  readonly config: Config;
  private readonly idPrefix: Uint8Array;
  private idCounter = 0;
  private readonly events: EngineEvent[] = [];

  closed = false;
  closeReason: string | null = null;
  connected = true;
  private pendingClose: Uint8Array | null = null;

  // --- send side ---
  private readonly outbox = new Map<string, OutMessage>();
  private outboxBytes = 0;
  private readonly queue: OutMessage[] = [];        // messages with bytes not yet framed
  private readonly inflight = new Map<number, SentFrame>();
  private inflightBytes = 0;
  private sendBase = 0;                               // oldest unacknowledged seq
  private nextSeq = 0;
  private retransmitQueue: SentFrame[] = [];
  private srtt = 0;
  private rttvar = 0;
  private hasRttSample = false;
  private rto: number;
  private backoff = 0;
  private rtoDeadline: number | null = null;

  // --- receive side ---
  private recvBase = 0;
  private readonly held = new Map<number, DataFrame>();
  private heldUnchunkedBytes = 0;
  private heldChunkBytes = 0;                          // totals of chunked messages held ahead
  private reassembly: Reassembly | null = null;
  private readonly chunkTotals = new Map<string, number>();   // stored chunks' totals by id
  private readonly delivered: IdSet;
  private readonly awaitingReply = new Set<string>();
  private readonly responses: ResponseCache;
  private ackOwedSince: number | null = null;          // first frame not yet acknowledged
  private ackNow = false;
  private framesSinceAck = 0;
  private bytesSinceAck = 0;

  constructor(config: Config = DEFAULT_CONFIG, now = 0, idPrefix?: Uint8Array) {
    this.config = config;
    this.idPrefix = idPrefix ?? randomPrefix();
    if (this.idPrefix.length !== 8) throw new LocalProtocolError("id prefix must be 8 bytes");
    this.rto = config.initialRto;
    this.delivered = new IdSet(config.idSetCapacity);
    this.responses = new ResponseCache(config.responseCacheEntries, config.responseCacheBytes,
                                       config.responseCacheTtl);
    void now;
  }

  // --- application API ---------------------------------------------------------------------
  get outboxMessages(): number {
    return this.outbox.size;
  }

  get hasRoom(): boolean {
    return this.outbox.size < this.config.maxOutboxMessages &&
      this.outboxBytes < this.config.maxOutboxBytes;
  }

  /** Queue a message; returns its id. With `msgId` of a message still pending, queues nothing. */
  send(payload: Uint8Array, now: number, request = false, msgId?: Uint8Array): Uint8Array {
    if (msgId !== undefined && this.outbox.has(idKey(msgId))) return msgId;
    return this.accept(payload, now, request ? REQUEST : 0, null, msgId);
  }

  /** Answer the peer's request `requestId` (once); `request`: a chained reply. */
  reply(requestId: Uint8Array, payload: Uint8Array, now: number, request = false): Uint8Array {
    const key = idKey(requestId);
    if (!this.awaitingReply.has(key)) {
      throw new LocalProtocolError("no request of the peer awaits a reply with this id");
    }
    const flags = RESPONSE | (request ? REQUEST : 0);
    const id = this.accept(payload, now, flags, requestId);
    this.awaitingReply.delete(key);
    this.responses.put(key, { responseId: id, flags, payload, at: now });
    return id;
  }

  /** Leave the peer's request unanswered. */
  decline(requestId: Uint8Array): void {
    this.awaitingReply.delete(idKey(requestId));
  }

  private newId(): Uint8Array {
    const id = new Uint8Array(16);
    id.set(this.idPrefix, 0);
    const n = this.idCounter++;
    const view = new DataView(id.buffer);
    view.setUint32(8, Math.floor(n / 2 ** 32));
    view.setUint32(12, n >>> 0);
    return id;
  }

  private accept(payload: Uint8Array, now: number, flags: number, replyTo: Uint8Array | null,
                 msgId?: Uint8Array): Uint8Array {
    if (this.closed) throw new LocalProtocolError(`session closed: ${this.closeReason}`);
    if (payload.length > this.config.maxMessageSize) {
      throw new LocalProtocolError(
        `message of ${payload.length} bytes exceeds max_message_size (${this.config.maxMessageSize})`);
    }
    if (!this.hasRoom) {
      throw new QueueFull(`outbox full (${this.outbox.size} messages, ${this.outboxBytes} bytes)`);
    }
    const id = msgId ?? this.newId();
    const chunked = payload.length > this.config.chunkSize;
    const msg: OutMessage = {
      id, key: idKey(id), flags, replyTo, payload, chunked,
      frames: chunked ? Math.ceil(payload.length / this.config.chunkSize) : 1,
      framed: 0, acked: 0, acceptedAt: now,
      requestKey: replyTo === null ? null : idKey(replyTo),
    };
    this.outbox.set(msg.key, msg);
    this.outboxBytes += payload.length;
    this.queue.push(msg);
    return id;
  }

  nextEvent(): EngineEvent | undefined {
    return this.events.shift();
  }

  // --- receiving ---------------------------------------------------------------------------
  /** A batch from the peer. A violation closes the session and is rethrown. */
  receive(data: Uint8Array, now: number): void {
    if (this.closed) return;
    try {
      checkBatchHeader(data, this.config.maxBatchSize);
      const r = new Reader(data, 1);
      let count = 0;
      while (r.left > 0) {
        if (++count > this.config.maxFramesPerBatch) {
          throw new RemoteProtocolError(
            `batch holds more than ${this.config.maxFramesPerBatch} frames`);
        }
        const frame = readFrame(r, this.config.maxAckRanges);
        if (frame.type === 1) this.onData(frame, now);
        else if (frame.type === 2) this.onAck(frame, now);
        else {
          this.end(`closed by peer: ${frame.reason}`, true);
          return;
        }
        if (this.closed) return;
      }
    } catch (exc) {
      if (exc instanceof RemoteProtocolError) this.protocolError(exc);
      throw exc;
    }
  }

  private protocolError(exc: RemoteProtocolError): void {
    if (this.closed) return;
    this.closeWith(PROTOCOL.closeProtocolError, `protocol error: ${exc.reason}`);
  }

  private onData(f: DataFrame, now: number): void {
    const seq = f.seq;
    if (seq < this.recvBase || this.held.has(seq)) {
      this.ackNow = true;                      // duplicate: the sender probably missed an ACK
      this.owe(now);
      return;
    }
    const window = this.config.receiveWindow;
    if (seq >= this.recvBase + window) {
      throw new RemoteProtocolError(`sequence number ${seq} is beyond the receive window ` +
        `[${this.recvBase}, ${this.recvBase + window})`);
    }
    const chunk = (f.flags & CHUNK) !== 0;
    const max = this.config.maxMessageSize;
    if (!chunk && f.payload.length > max) {
      throw new RemoteProtocolError(`message of ${f.payload.length} bytes exceeds max_message_size`);
    }
    if (chunk) {
      const key = idKey(f.msgId);
      const earlier = this.reassembly?.key === key ? this.reassembly.total : this.chunkTotals.get(key);
      if (earlier === undefined && f.total > max) {
        throw new RemoteProtocolError(`message of ${f.total} bytes exceeds max_message_size (${max})`);
      }
      if (earlier !== undefined && earlier !== f.total) {
        throw new RemoteProtocolError(
          `chunk says the message has ${f.total} bytes, an earlier chunk said ${earlier}`);
      }
    }
    if (seq === this.recvBase) {
      this.deliverFrame(f, now);
      this.recvBase++;
      let next = this.held.get(this.recvBase);
      while (next !== undefined) {
        this.held.delete(this.recvBase);
        if (!(next.flags & CHUNK)) this.heldUnchunkedBytes -= next.payload.length;
        this.deliverFrame(next, now);
        this.recvBase++;
        next = this.held.get(this.recvBase);
      }
    } else {
      if (!chunk) {
        if (this.heldUnchunkedBytes + f.payload.length > this.config.maxReorderBytes) return;
        this.heldUnchunkedBytes += f.payload.length;
      } else {
        // a message not in progress yet is admitted only within the reassembly bounds (7.1)
        const key = idKey(f.msgId);
        const known = this.chunkTotals.has(key) || this.reassembly?.key === key;
        if (!known && (this.chunkTotals.size >= this.config.maxReassemblies ||
                       this.heldChunkBytes + f.total > this.config.maxReassemblyBytes)) return;
        if (!known) this.heldChunkBytes += f.total;
        this.chunkTotals.set(key, f.total);
      }
      // the payload is a view into the batch: keep a copy of what waits
      this.held.set(seq, { ...f, payload: f.payload.slice() });
      this.ackNow = true;                      // a gap: tell the sender at once
    }
    this.framesSinceAck++;
    this.bytesSinceAck += f.payload.length;
    if (this.framesSinceAck >= this.config.ackEvery ||
        this.bytesSinceAck >= this.config.ackEveryBytes) this.ackNow = true;
    this.owe(now);
  }

  private owe(now: number): void {
    if (this.ackOwedSince === null) this.ackOwedSince = now;
  }

  /** Deliver one in-order frame: a whole message, or a chunk of the message being reassembled. */
  private deliverFrame(f: DataFrame, now: number): void {
    if (!(f.flags & CHUNK)) {
      if (this.reassembly !== null) {
        throw new RemoteProtocolError("chunks of two messages are interleaved");
      }
      this.deliverMessage(f.msgId, f.flags, f.replyTo, f.payload.slice(), now);
      return;
    }
    const key = idKey(f.msgId);
    let re = this.reassembly;
    if (re === null) {
      if (f.offset !== 0) {
        throw new RemoteProtocolError(`message starts with a chunk at offset ${f.offset}`);
      }
      re = this.reassembly = { key, id: f.msgId, total: f.total, parts: [], received: 0 };
    } else if (re.key !== key) {
      throw new RemoteProtocolError("chunks of two messages are interleaved");
    } else if (re.total !== f.total || f.offset !== re.received) {
      throw new RemoteProtocolError(`chunk at offset ${f.offset} of ${f.total} does not follow ` +
        `${re.received} of ${re.total}`);
    }
    re.parts.push(f.payload.slice());
    re.received += f.payload.length;
    if (re.received < re.total) return;
    this.reassembly = null;
    if (this.chunkTotals.delete(key)) this.heldChunkBytes = Math.max(0, this.heldChunkBytes - re.total);
    const whole = new Uint8Array(re.total);
    let pos = 0;
    for (const part of re.parts) {
      whole.set(part, pos);
      pos += part.length;
    }
    this.deliverMessage(f.msgId, f.flags & ~CHUNK, f.replyTo, whole, now);
  }

  private deliverMessage(id: Uint8Array, flags: number, replyTo: Uint8Array | null,
                         payload: Uint8Array, now: number): void {
    const key = idKey(id);
    if (this.delivered.has(key)) {
      if (flags & REQUEST) this.resendCachedResponse(key, now);
      return;
    }
    this.delivered.add(key);
    const request = (flags & REQUEST) !== 0;
    if (request) this.awaitingReply.add(key);
    if (flags & RESPONSE) {
      this.events.push({ kind: "response", msgId: id, replyTo: replyTo as Uint8Array, payload,
                         request });
    } else {
      this.events.push({ kind: "received", msgId: id, payload, request });
    }
  }

  /** A retried request we already answered (section 8). */
  private resendCachedResponse(requestKey: string, now: number): void {
    const cached = this.responses.get(requestKey, now);
    if (cached === undefined) return;
    const pending = this.outbox.get(idKey(cached.responseId));
    if (pending !== undefined) return;        // still in flight: the RTO or resume resends it
    const requestId = Uint8Array.from(requestKey, (c) => c.charCodeAt(0));
    this.accept(cached.payload, now, cached.flags, requestId, cached.responseId);
  }

  private onAck(ack: AckFrame, now: number): void {
    if (ack.cumulative > this.nextSeq) {
      throw new RemoteProtocolError(`ACK for sequence number ${ack.cumulative - 1}, never sent ` +
        `(next is ${this.nextSeq})`);
    }
    for (const [, end] of ack.ranges) {
      if (end > this.nextSeq) {
        throw new RemoteProtocolError(`ACK range up to ${end - 1}, never sent (next is ${this.nextSeq})`);
      }
    }
    let highest: SentFrame | null = null;
    const deliveredIds: Uint8Array[] = [];
    const ackOne = (seq: number) => {
      const frame = this.inflight.get(seq);
      if (frame === undefined) return;
      this.inflight.delete(seq);
      this.inflightBytes -= frame.length;
      if (highest === null || seq > highest.seq) highest = frame;
      const msg = frame.msg;
      msg.acked++;
      if (msg.acked === msg.frames) {
        this.outbox.delete(msg.key);
        this.outboxBytes -= msg.payload.length;
        deliveredIds.push(msg.id);
        if (msg.requestKey !== null) this.responses.delete(msg.requestKey);
      }
    };
    for (let seq = this.sendBase; seq < ack.cumulative; seq++) ackOne(seq);
    for (const [start, end] of ack.ranges) {
      for (let seq = Math.max(start, this.sendBase); seq < end; seq++) ackOne(seq);
    }
    if (highest === null) return;
    this.advanceSendBase();
    if (this.retransmitQueue.length) {
      this.retransmitQueue = this.retransmitQueue.filter((f) => this.inflight.has(f.seq));
    }
    const h = highest as SentFrame;
    if (h.transmissions === 1) {
      const delay = Math.min(ack.ackDelayUs / 1e6, this.config.maxAckDelay);
      const sample = now - h.sentAt - delay;
      if (sample > 0) this.rttSample(sample);
    }
    this.backoff = 0;
    this.rtoDeadline = this.inflight.size ? now + this.timeout() : null;
    if (deliveredIds.length) this.events.push({ kind: "delivered", msgIds: deliveredIds });
  }

  private advanceSendBase(): void {
    while (this.sendBase < this.nextSeq && !this.inflight.has(this.sendBase)) this.sendBase++;
  }

  private rttSample(r: number): void {
    if (!this.hasRttSample) {
      this.srtt = r;
      this.rttvar = r / 2;
      this.hasRttSample = true;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    const c = this.config;
    const rto = this.srtt + Math.max(PROTOCOL.clockGranularity, 4 * this.rttvar) + c.maxAckDelay;
    this.rto = Math.min(Math.max(rto, c.minRto), c.maxRto);
  }

  private timeout(): number {
    return Math.min(this.rto * 2 ** this.backoff, this.config.maxRto);
  }

  // --- sending -----------------------------------------------------------------------------
  /** The receive state as one ACK frame (section 7.4). */
  private ackFrame(ackDelayUs: number): Uint8Array {
    const ranges: Array<[number, number]> = [];
    if (this.held.size) {
      const seqs = [...this.held.keys()].sort((a, b) => a - b);
      let start = seqs[0];
      let end = start + 1;
      for (let i = 1; i < seqs.length && ranges.length < this.config.maxAckRanges; i++) {
        if (seqs[i] === end) end++;
        else {
          ranges.push([start, end]);
          start = seqs[i];
          end = start + 1;
        }
      }
      if (ranges.length < this.config.maxAckRanges) ranges.push([start, end]);
    }
    return encodeAck(this.recvBase, ranges, ackDelayUs);
  }

  /** `resume_state()`: the receive state as one ACK frame, no version byte, ack_delay 0. */
  resumeState(): Uint8Array {
    return this.ackFrame(0);
  }

  private ackDue(now: number): boolean {
    if (this.ackOwedSince === null) return false;
    return this.ackNow || now >= this.ackOwedSince + this.config.maxAckDelay;
  }

  /** The batches to send now, in order (section 6.3). */
  dataToSend(now: number): Uint8Array[] {
    if (this.pendingClose !== null) {
      const close = this.pendingClose;
      this.pendingClose = null;
      return this.connected ? [encodeBatch([this.ackFrame(0), close])] : [];
    }
    if (this.closed || !this.connected) return [];
    const c = this.config;
    const batches: Uint8Array[] = [];
    let parts: Uint8Array[] = [];
    let size = 1;
    let hasData = false;
    const flush = () => {
      if (parts.length) batches.push(encodeBatch(parts));
      parts = [];
      size = 1;
      hasData = false;
    };
    const addData = (frame: Uint8Array) => {
      if (hasData && (size + frame.length > c.coalesceBytes || parts.length + 1 > c.maxFramesPerBatch)) {
        flush();
      }
      parts.push(frame);
      size += frame.length;
      hasData = true;
    };
    const wantData = this.retransmitQueue.length > 0 || this.canSendNew();
    if (this.ackDue(now) || (wantData && this.ackOwedSince !== null)) {
      const delayUs = Math.max(0, Math.round((now - (this.ackOwedSince as number)) * 1e6));
      const ack = this.ackFrame(delayUs);
      parts.push(ack);
      size += ack.length;
      this.ackOwedSince = null;
      this.ackNow = false;
      this.framesSinceAck = 0;
      this.bytesSinceAck = 0;
    }
    const wasIdle = this.inflight.size === 0;
    for (const frame of this.retransmitQueue) {
      frame.queued = false;
      frame.transmissions++;
      frame.sentAt = now;
      addData(this.encodeFrame(frame));
    }
    this.retransmitQueue = [];
    while (this.canSendNew()) {
      const msg = this.queue[0];
      const offset = msg.framed;
      const length = msg.chunked ? Math.min(c.chunkSize, msg.payload.length - offset)
                                 : msg.payload.length;
      const frame: SentFrame = { seq: this.nextSeq++, msg, offset, length, sentAt: now,
                                 transmissions: 1, queued: false };
      msg.framed += length;
      if (msg.framed >= msg.payload.length) this.queue.shift();
      this.inflight.set(frame.seq, frame);
      this.inflightBytes += length;
      addData(this.encodeFrame(frame));
    }
    flush();
    if (wasIdle && this.inflight.size && this.rtoDeadline === null) {
      this.rtoDeadline = now + this.timeout();
    }
    return batches;
  }

  /** A lower cap on payload bytes in flight set by the caller for the link it has now (a
   *  long-polling link carries everything in flight in a few POSTs); null: the config's. */
  inflightBytesCap: number | null = null;

  private canSendNew(): boolean {
    const cap = this.inflightBytesCap === null ? this.config.maxInflightBytes
      : Math.min(this.inflightBytesCap, this.config.maxInflightBytes);
    return this.queue.length > 0 &&
      this.nextSeq - this.sendBase < this.config.maxInflightMessages &&
      this.inflightBytes < cap;
  }

  private encodeFrame(frame: SentFrame): Uint8Array {
    const msg = frame.msg;
    const flags = msg.chunked ? msg.flags | CHUNK : msg.flags;
    const payload = msg.payload.subarray(frame.offset, frame.offset + frame.length);
    const total = msg.payload.length;
    const out = new Uint8Array(dataHeaderSize(frame.seq, flags, total, frame.offset, frame.length) +
                               frame.length);
    writeData(out, 0, frame.seq, msg.id, payload, flags, msg.replyTo, total, frame.offset);
    return out;
  }

  // --- timers ------------------------------------------------------------------------------
  /** When handleTimer() should run next, or null. */
  getTimer(): number | null {
    if (this.closed) return null;
    let when: number | null = null;
    if (this.connected) {
      if (this.rtoDeadline !== null) when = this.rtoDeadline;
      if (this.ackOwedSince !== null) {
        const ackAt = this.ackNow ? this.ackOwedSince : this.ackOwedSince + this.config.maxAckDelay;
        when = when === null ? ackAt : Math.min(when, ackAt);
      }
    }
    const timeout = this.config.deliveryTimeout;
    if (timeout !== null && this.outbox.size) {
      const oldest = this.outbox.values().next().value as OutMessage;
      const at = oldest.acceptedAt + timeout;
      when = when === null ? at : Math.min(when, at);
    }
    return when;
  }

  handleTimer(now: number): void {
    if (this.closed) return;
    const timeout = this.config.deliveryTimeout;
    if (timeout !== null && this.outbox.size) {
      const oldest = this.outbox.values().next().value as OutMessage;
      if (now >= oldest.acceptedAt + timeout) {
        this.closeWith(PROTOCOL.closeDeliveryTimeout, "delivery timeout");
        return;
      }
    }
    if (this.connected && this.rtoDeadline !== null && now >= this.rtoDeadline) {
      const oldest = this.inflight.get(this.sendBase);
      if (oldest !== undefined && !oldest.queued) {
        oldest.queued = true;
        this.retransmitQueue.push(oldest);
      }
      this.backoff = Math.min(this.backoff + 1, PROTOCOL.maxBackoff);
      this.rtoDeadline = now + this.timeout();
    }
  }

  // --- link and session --------------------------------------------------------------------
  /** The link is gone: send nothing, keep everything (section 9 step 1). */
  disconnect(_now: number): void {
    this.connected = false;
    for (const f of this.retransmitQueue) f.queued = false;
    this.retransmitQueue = [];
    this.rtoDeadline = null;
    this.ackNow = false;
  }

  /** Resume on a new link with the peer's resume state (section 9 steps 3-4). */
  resume(peerState: Uint8Array, now: number): void {
    if (this.closed) throw new LocalProtocolError(`session closed: ${this.closeReason}`);
    try {
      const r = new Reader(peerState);
      if (r.left < 1 || peerState[0] !== PROTOCOL.frameAck) {
        throw new RemoteProtocolError("resume state must be exactly one ACK frame");
      }
      r.pos = 1;
      const ack = readAckBody(r, this.config.maxAckRanges);
      if (r.left !== 0) throw new RemoteProtocolError("resume state must be exactly one ACK frame");
      if (ack.cumulative < this.sendBase) {
        throw new RemoteProtocolError(`peer lost acknowledged frames ${ack.cumulative}..` +
          `${this.sendBase - 1}: its session state is older than ours`);
      }
      this.onAck(ack, now);
    } catch (exc) {
      if (exc instanceof RemoteProtocolError) this.protocolError(exc);
      throw exc;
    }
    this.connected = true;
    this.retransmitQueue = [];
    for (let seq = this.sendBase; seq < this.nextSeq; seq++) {
      const frame = this.inflight.get(seq);
      if (frame !== undefined) {
        frame.queued = true;
        this.retransmitQueue.push(frame);
      }
    }
    this.backoff = 0;
    this.rtoDeadline = this.inflight.size ? now + this.timeout() : null;
    if (this.held.size) {
      this.ackNow = true;
      this.owe(now);
    }
  }

  /** End the session: CLOSE to the peer (if connected), every pending message expired. */
  close(reason = "session closed", _now = 0): void {
    if (this.closed) return;
    this.closeWith(PROTOCOL.closeNormal, reason);
  }

  private closeWith(code: number, reason: string): void {
    this.pendingClose = encodeClose(code, reason);
    this.end(reason, false);
  }

  private end(reason: string, byPeer: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    for (const msg of this.outbox.values()) {
      this.events.push({ kind: "expired", msgId: msg.id, reason });
    }
    this.outbox.clear();
    this.queue.length = 0;
    this.inflight.clear();
    this.retransmitQueue = [];
    this.rtoDeadline = null;
    this.events.push({ kind: "closed", reason, byPeer });
  }

  // --- local snapshot (not a wire format; used to keep a session across a page reload) ---------
  /** The session's whole state as JSON-able data, times stored as ages (clocks differ between
   *  pages). At most `maxIds` delivered ids are kept (the newest). */
  snapshot(now: number, maxIds = 1000): EngineSnapshot {
    if (this.closed) throw new LocalProtocolError("a closed session has no snapshot");
    const outbox = [...this.outbox.values()];
    const index = new Map(outbox.map((m, i) => [m, i]));
    const frames: number[][] = [];
    for (const f of this.inflight.values()) {
      frames.push([f.seq, index.get(f.msg) as number, f.offset, f.length, f.transmissions, now - f.sentAt]);
    }
    const ids = [...this.delivered.ids];
    return {
      v: 1, prefix: b64(this.idPrefix), counter: this.idCounter,
      rtt: [this.srtt, this.rttvar, this.rto, this.hasRttSample ? 1 : 0],
      outbox: outbox.map((m) => [b64(m.id), m.flags, m.replyTo ? b64(m.replyTo) : null, b64(m.payload),
                                  m.framed, m.acked, now - m.acceptedAt]),
      queue: this.queue.map((m) => index.get(m) as number),
      frames, sendBase: this.sendBase, nextSeq: this.nextSeq, recvBase: this.recvBase,
      held: [...this.held.values()].map((f) => [f.seq, f.flags, b64(f.msgId),
                                                f.replyTo ? b64(f.replyTo) : null, f.total, f.offset,
                                                b64(f.payload)]),
      reassembly: this.reassembly === null ? null : [b64(this.reassembly.id), this.reassembly.total,
                                                     b64(concat(this.reassembly.parts))],
      delivered: ids.slice(Math.max(0, ids.length - maxIds)).map(latin1ToB64),
      awaiting: [...this.awaitingReply].map(latin1ToB64),
      responses: this.responses.dump().map(([key, v]) => [latin1ToB64(key), b64(v.responseId), v.flags,
                                                          b64(v.payload), now - v.at]),
    };
  }

  /** An engine from snapshot(); it starts disconnected, to be resumed. Throws
   *  RemoteProtocolError("snapshot: ...") on data that is not a snapshot. */
  static restore(data: EngineSnapshot, config: Config, now: number): Engine {
    try {
      if (data.v !== 1) throw new Error("unknown version");
      const e = new Engine(config, now, unb64(data.prefix));
      e.idCounter = data.counter;
      [e.srtt, e.rttvar, e.rto] = data.rtt;
      e.hasRttSample = data.rtt[3] === 1;
      const msgs: OutMessage[] = data.outbox.map(([id, flags, replyTo, payload, framed, acked, age]) => {
        const bytes = unb64(payload as string);
        const chunked = bytes.length > config.chunkSize;
        const msgId = unb64(id as string);
        const reply = replyTo === null ? null : unb64(replyTo as string);
        return { id: msgId, key: idKey(msgId), flags: flags as number, replyTo: reply, payload: bytes,
                 chunked, frames: chunked ? Math.ceil(bytes.length / config.chunkSize) : 1,
                 framed: framed as number, acked: acked as number, acceptedAt: now - (age as number),
                 requestKey: reply === null ? null : idKey(reply) };
      });
      for (const m of msgs) {
        e.outbox.set(m.key, m);
        e.outboxBytes += m.payload.length;
      }
      for (const i of data.queue) e.queue.push(msgs[i]);
      for (const [seq, i, offset, length, transmissions, age] of data.frames) {
        const msg = msgs[i];
        if (msg === undefined) throw new Error("frame of an unknown message");
        e.inflight.set(seq, { seq, msg, offset, length, transmissions, sentAt: now - age, queued: false });
        e.inflightBytes += length;
      }
      e.sendBase = data.sendBase;
      e.nextSeq = data.nextSeq;
      e.recvBase = data.recvBase;
      for (const [seq, flags, id, replyTo, total, offset, payload] of data.held) {
        const f: DataFrame = { type: 1, seq: seq as number, flags: flags as number, msgId: unb64(id as string),
          replyTo: replyTo === null ? null : unb64(replyTo as string), total: total as number,
          offset: offset as number, payload: unb64(payload as string) };
        e.held.set(f.seq, f);
        if (f.flags & CHUNK) e.chunkTotals.set(idKey(f.msgId), f.total);
        else e.heldUnchunkedBytes += f.payload.length;
      }
      for (const total of e.chunkTotals.values()) e.heldChunkBytes += total;
      if (data.reassembly !== null) {
        const [id, total, bytes] = data.reassembly;
        const part = unb64(bytes as string);
        const msgId = unb64(id as string);
        e.reassembly = { key: idKey(msgId), id: msgId, total: total as number, parts: [part], received: part.length };
      }
      for (const id of data.delivered) e.delivered.add(b64ToLatin1(id));
      for (const id of data.awaiting) e.awaitingReply.add(b64ToLatin1(id));
      for (const [key, responseId, flags, payload, age] of data.responses) {
        e.responses.put(b64ToLatin1(key as string), { responseId: unb64(responseId as string),
          flags: flags as number, payload: unb64(payload as string), at: now - (age as number) });
      }
      e.connected = false;
      return e;
    } catch (exc) {
      throw new RemoteProtocolError(`snapshot: ${(exc as Error).message}`);
    }
  }

  get stats(): Record<string, number> {
    return {
      outboxMessages: this.outbox.size, outboxBytes: this.outboxBytes,
      inflightFrames: this.inflight.size, nextSeq: this.nextSeq, sendBase: this.sendBase,
      receiveBase: this.recvBase, heldFrames: this.held.size, awaitingReply: this.awaitingReply.size,
      cachedResponses: this.responses.size, rto: this.rto,
    };
  }
}

/** Engine.snapshot()'s data (JSON-able). */
export interface EngineSnapshot {
  v: number;
  prefix: string;
  counter: number;
  rtt: number[];
  outbox: Array<Array<string | number | null>>;
  queue: number[];
  frames: number[][];
  sendBase: number;
  nextSeq: number;
  recvBase: number;
  held: Array<Array<string | number | null>>;
  reassembly: Array<string | number> | null;
  delivered: string[];
  awaiting: string[];
  responses: Array<Array<string | number>>;
}

function b64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  }
  return btoa(text);
}

function unb64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function latin1ToB64(key: string): string {
  return btoa(key);
}

function b64ToLatin1(text: string): string {
  return atob(text);
}

function concat(parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
