// The drop-in socket: socket.io-client's Socket API on top of a relio session (docs/PROTOCOL.md
// section 13). This module owns the binding: the handshake (relio=1 in the query, resume state in
// `auth` given as a function), carriers out through `manager.engine.write` and in through the
// custom parser, the session's lifecycle (connect once, relio_suspend / relio_resume, disconnect
// when the session ends), and the mapping of emits, acks and replies onto engine messages. The
// protocol itself lives in engine.ts; this file only drives it (clock, one timer, flushing).
// Against a plain Socket.IO server every call is handed to the underlying socket.io-client Socket.

import { Manager, Socket as SioSocket } from "socket.io-client";
import { Config, PROTOCOL, makeConfig } from "./config.js";
import { Engine, EngineEvent, EngineSnapshot } from "./engine.js";
import { idKey } from "./caches.js";
import { DeliveryError, QueueFull, RemoteProtocolError } from "./errors.js";
import { decodePayload, decodeReply, encodePayload } from "./payload.js";
import { carrierParser, Packet } from "./parser.js";

type Fn = (...args: any[]) => any;

/** relio's own options, under `relio` in io()'s options. */
export interface RelioOptions {
  /** false: behave exactly as socket.io-client (no relio handshake) */
  enabled?: boolean;
  /** engine limits; the peer limits must match the server's relio.Config */
  config?: Partial<Config>;
  /** seconds disconnect() waits for pending messages before ending the session (default 5) */
  drainTimeout?: number;
  /** keep the session (credential, engine state, unacknowledged outbox) in the tab's
   *  sessionStorage (`true`) or in the given Storage, so that a reload resumes it. Off by default:
   *  the stored credential is as sensitive as a session cookie (see README, "Tab persistence"). */
  persist?: boolean | StorageLike;
  /** the storage key (default `relio-client:<origin><namespace>`) */
  persistKey?: string;
}

/** The part of the Web Storage API that persistence uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

interface Persisted {
  v: 1;
  sid: string;
  credential: string;
  ttl: number;
  savedAt: number;
  config: Config;
  engine: EngineSnapshot;
}

export type Options = Record<string, any> & { relio?: RelioOptions };

/** relio's lifecycle events (reserved: never sent by the application, not given to onAny). */
export const RESUME_EVENT = "relio_resume";
export const SUSPEND_EVENT = "relio_suspend";
export const DELIVERY_ERROR_EVENT = "relio_delivery_error";
const LIFECYCLE = new Set([RESUME_EVENT, SUSPEND_EVENT, DELIVERY_ERROR_EVENT]);
const RESERVED = new Set(["connect", "connect_error", "disconnect", "disconnecting",
                          "newListener", "removeListener", ...LIFECYCLE]);

const now = (): number => performance.now() / 1000;

/** Engine.io messages queued in the transport beyond which relio waits for it to drain: over
 *  long-polling one POST carries the whole queue and python-engineio refuses a POST of more than
 *  16 messages ("Too many packets in payload"), which would cost the connection. */
const WRITE_QUEUE_LIMIT = 8;
/** Payload bytes relio keeps in flight while the link is long-polling (a few batches a POST). */
const POLLING_INFLIGHT_BYTES = 3 * 61440;

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
  return btoa(text);
}

function fromBase64(text: unknown): Uint8Array {
  if (typeof text !== "string" || text.length > 4096) {
    throw new RemoteProtocolError("invalid resume state");
  }
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    throw new RemoteProtocolError("invalid resume state");
  }
}

/** A reply we wait for: the emit's callback, or an emitWithAck promise. */
interface Waiter {
  event: string;
  /** true: callback(err, ...args) (timeout(ms).emit and emitWithAck) */
  withError: boolean;
  fn: Fn;
  timer?: ReturnType<typeof setTimeout>;
}

interface Tracked {
  event?: string | null;
  resolve?: (confirmed: boolean) => void;
  reject?: (err: DeliveryError) => void;
}

class Session {
  credential: string;
  ttl: number;
  expiry: ReturnType<typeof setTimeout> | null = null;
  readonly waiters = new Map<string, Waiter>();
  readonly tracked = new Map<string, Tracked>();
  constructor(readonly engine: Engine, readonly sid: string, credential: string, ttl: number) {
    this.credential = credential;
    this.ttl = ttl;
  }
}

/** An emit made before the server said whether it speaks relio. */
interface EarlyEmit {
  event: string;
  args: unknown[];
  ack: Fn | null;
  timeout: number | null;
  tracked: Tracked;
}

const stockParser = (() => {
  let cached: { Encoder: any; Decoder: any } | null = null;
  return () => {
    if (cached === null) {
      // socket.io-client's own socket.io-parser classes, without depending on socket.io-parser
      const probe = new Manager("http://127.0.0.1", { autoConnect: false });
      cached = { Encoder: (probe as any).encoder.constructor, Decoder: (probe as any).decoder.constructor };
    }
    return cached;
  };
})();

export class RelioSocket {
  /** the Manager, as socket.io-client's `socket.io` */
  readonly io: Manager;
  /** the underlying socket.io-client Socket (one connection at a time) */
  readonly sio: SioSocket;
  readonly nsp: string;
  private readonly prefix: Uint8Array;
  private readonly config: Config;
  private readonly relioEnabled: boolean;
  private readonly drainTimeout: number;
  private readonly userAuth: unknown;
  private readonly listenersMap = new Map<string, Fn[]>();
  private anyListeners: Fn[] = [];
  private mode: "unknown" | "relio" | "plain" = "unknown";
  private session: Session | null = null;
  private sessionConnected = false;      // the application got `connect` for this session
  private linkUp = false;                // the session's carriers may be written
  private resuming = false;
  /** the application got `relio_suspend` and not yet `relio_resume`: the two always pair */
  private suspended = false;
  private leaving = false;
  private early: EarlyEmit[] = [];
  private flushScheduled = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  private sendChain: Promise<void> | null = null;
  private drainWaiter: unknown = null;
  private readonly store: StorageLike | null;
  private readonly storeKey: string;
  private storeFailed = false;
  /** true once this page resumed a session kept from before a reload (socket.io-client's name) */
  recovered = false;

  constructor(uri: string, opts: Options = {}) {
    const { relio = {}, auth, ...sioOpts } = opts;
    this.relioEnabled = relio.enabled !== false;
    this.config = makeConfig(relio.config);
    this.drainTimeout = relio.drainTimeout ?? 5;
    this.userAuth = auth;
    const base = (globalThis as any).location?.href as string | undefined;
    const url = new URL(uri, base);
    this.nsp = url.pathname && url.pathname !== "" ? url.pathname : "/";
    const name = this.nsp === "/" ? new Uint8Array(0) : new TextEncoder().encode(this.nsp);
    if (name.length > PROTOCOL.maxNamespaceBytes) {
      throw new RangeError(`relio carries namespaces of up to ${PROTOCOL.maxNamespaceBytes} bytes`);
    }
    this.prefix = new Uint8Array(1 + name.length);
    this.prefix[0] = name.length;
    this.prefix.set(name, 1);
    const query: Record<string, string> = { ...Object.fromEntries(url.searchParams), ...(sioOpts.query ?? {}) };
    if (this.relioEnabled) query[PROTOCOL.queryKey] = String(PROTOCOL.handshakeVersion);
    const managerOpts: Record<string, any> = { ...sioOpts, query, autoConnect: false };
    if (this.relioEnabled) {
      managerOpts.parser = carrierParser(stockParser(), {
        onCarrier: (data) => this.onCarrier(data),
        onConnectPacket: (packet) => this.onConnectPacket(packet),
      });
    }
    this.store = !this.relioEnabled || !relio.persist ? null
      : relio.persist === true ? (globalThis as any).sessionStorage ?? null : relio.persist;
    this.storeKey = relio.persistKey ?? `relio-client:${url.origin}${this.nsp}`;
    if (this.store !== null) this.restoreSession();
    this.io = new Manager(url.origin, managerOpts);
    this.sio = this.io.socket(this.nsp, { auth: (cb: Fn) => this.authFor(cb) });
    this.sio.on("connect", () => this.onSioConnect());
    this.sio.on("disconnect", (reason: string, details?: unknown) => this.onSioDisconnect(reason, details));
    this.sio.on("connect_error", (err: Error) => this.fire("connect_error", [err]));
    this.sio.onAny((event: string, ...args: unknown[]) => this.dispatch(event, args));
    this.io.on("reconnect_failed", () => {
      if (this.session !== null) this.endSession("reconnection failed", "reconnection failed");
    });
    if (sioOpts.autoConnect !== false) this.sio.connect();
  }

  // --- socket.io-client API ------------------------------------------------------------------
  /** The session id: the same for the whole relio session (socket.io-client's `id`). */
  get id(): string | undefined {
    return this.session?.sid ?? this.sio.id;
  }

  /** True from `connect` until `disconnect`: a relio session stays connected while its link is
   *  down and being resumed (emits are queued meanwhile). */
  get connected(): boolean {
    return this.mode === "relio" ? this.sessionConnected : this.sio.connected;
  }

  get disconnected(): boolean {
    return !this.connected;
  }

  get active(): boolean {
    return this.sio.active;
  }

  /** True when messages travel through a relio session (the server speaks relio). */
  get relio(): boolean {
    return this.mode === "relio" && this.session !== null;
  }

  /** Whether the link under the session is up right now. */
  get linked(): boolean {
    return this.linkUp;
  }

  connect(): this {
    this.leaving = false;
    this.sio.connect();
    return this;
  }

  open(): this {
    return this.connect();
  }

  on(event: string, fn: Fn): this {
    const list = this.listenersMap.get(event) ?? [];
    list.push(fn);
    this.listenersMap.set(event, list);
    return this;
  }

  addEventListener(event: string, fn: Fn): this {
    return this.on(event, fn);
  }

  once(event: string, fn: Fn): this {
    const wrapper = (...args: unknown[]) => {
      this.off(event, wrapper);
      fn.apply(this, args);
    };
    (wrapper as any).fn = fn;
    return this.on(event, wrapper);
  }

  off(event?: string, fn?: Fn): this {
    if (event === undefined) this.listenersMap.clear();
    else if (fn === undefined) this.listenersMap.delete(event);
    else {
      const list = (this.listenersMap.get(event) ?? []).filter((f) => f !== fn && (f as any).fn !== fn);
      this.listenersMap.set(event, list);
    }
    return this;
  }

  removeListener(event?: string, fn?: Fn): this {
    return this.off(event, fn);
  }

  removeAllListeners(event?: string): this {
    return this.off(event);
  }

  listeners(event: string): Fn[] {
    return [...(this.listenersMap.get(event) ?? [])];
  }

  hasListeners(event: string): boolean {
    return (this.listenersMap.get(event) ?? []).length > 0;
  }

  onAny(fn: Fn): this {
    this.anyListeners.push(fn);
    return this;
  }

  prependAny(fn: Fn): this {
    this.anyListeners.unshift(fn);
    return this;
  }

  offAny(fn?: Fn): this {
    this.anyListeners = fn === undefined ? [] : this.anyListeners.filter((f) => f !== fn);
    return this;
  }

  listenersAny(): Fn[] {
    return [...this.anyListeners];
  }

  /** Emit an event; a function as last argument receives the server's acknowledgement. In a
   *  relio session the event reaches the server's handler exactly once, in order, across
   *  reconnects. Throws QueueFull when the session's outbox is full (nothing was queued). */
  emit(event: string, ...args: unknown[]): this {
    let ack: Fn | null = null;
    if (args.length && typeof args[args.length - 1] === "function") ack = args.pop() as Fn;
    this.submit(event, args, ack, null, {});
    return this;
  }

  send(...args: unknown[]): this {
    return this.emit("message", ...args);
  }

  write(...args: unknown[]): this {
    return this.send(...args);
  }

  /** Emit and resolve with the server's acknowledgement (its first argument). */
  emitWithAck(event: string, ...args: unknown[]): Promise<any> {
    return this.ackPromise(event, args, null);
  }

  /** Emit and resolve once the server has the message: `true` when a relio session confirmed
   *  it, `false` against a plain server (sent, not confirmed). Rejects with DeliveryError when it
   *  never will be delivered. Python's `Delivery`. */
  emitWithDelivery(event: string, ...args: unknown[]): Promise<boolean> {
    return new Promise((resolve, reject) => {
      let ack: Fn | null = null;
      if (args.length && typeof args[args.length - 1] === "function") ack = args.pop() as Fn;
      this.submit(event, args, ack, null, { resolve, reject });
    });
  }

  /** socket.io-client's `timeout(ms)`: the callback gets an Error first if no answer came in time. */
  timeout(ms: number): { emit: (event: string, ...args: unknown[]) => RelioSocket;
                         emitWithAck: (event: string, ...args: unknown[]) => Promise<any> } {
    return {
      emit: (event: string, ...args: unknown[]) => {
        const ack = typeof args[args.length - 1] === "function" ? args.pop() as Fn : null;
        if (ack === null) throw new TypeError("timeout(ms).emit() needs an acknowledgement callback");
        this.submit(event, args, ack, ms, {});
        return this;
      },
      emitWithAck: (event: string, ...args: unknown[]) => this.ackPromise(event, args, ms),
    };
  }

  private ackPromise(event: string, args: unknown[], ms: number | null): Promise<any> {
    return new Promise((resolve, reject) => {
      const ack = (err: unknown, ...rest: unknown[]) => (err ? reject(err) : resolve(rest[0]));
      this.submit(event, args, ack, ms, {}, true);
    });
  }

  /** End the session: pending messages get up to `drainTimeout` seconds to be delivered, then
   *  the server is told (CLOSE and Socket.IO DISCONNECT). */
  disconnect(): this {
    this.leaving = true;
    const session = this.session;
    if (session === null || !this.linkUp || session.engine.outboxMessages === 0) {
      this.finishDisconnect();
      return this;
    }
    const deadline = now() + this.drainTimeout;
    const check = () => {
      if (this.session !== session) return;
      if (session.engine.outboxMessages === 0 || !this.linkUp || now() >= deadline) {
        this.finishDisconnect();
      } else {
        setTimeout(check, 20);
      }
    };
    this.flush();
    setTimeout(check, 20);
    return this;
  }

  close(): this {
    return this.disconnect();
  }

  private finishDisconnect(): void {
    this.forget();
    const session = this.session;
    if (session !== null) {
      session.engine.close("client disconnect", now());
      this.flush();
      this.session = null;
    }
    const wasConnected = this.connected;
    this.sessionConnected = false;
    this.suspended = false;
    this.linkUp = false;
    this.cancelTimer();
    this.sio.disconnect();
    if (session !== null && wasConnected && this.mode === "relio") {
      this.fire("disconnect", ["io client disconnect"]);
    }
  }

  // --- sending ---------------------------------------------------------------------------------
  private submit(event: string, args: unknown[], ack: Fn | null, timeoutMs: number | null,
                 tracked: Tracked, withError = false): void {
    if (RESERVED.has(event)) throw new Error(`"${event}" is a reserved event name`);
    const wrapped = ack === null ? null : this.wrapAck(ack, timeoutMs !== null || withError);
    const hasBlob = typeof Blob !== "undefined" && args.some(containsBlob);
    if (this.sendChain !== null || hasBlob) {
      // Blobs are read asynchronously: later emits wait behind them so that order holds
      const previous = this.sendChain ?? Promise.resolve();
      const chain: Promise<void> = previous.then(async () => {
        const resolved = hasBlob ? await resolveBlobs(args) : args;
        try {
          this.submitNow(event, resolved as unknown[], wrapped, timeoutMs, tracked);
        } catch (err) {
          this.reportUnsent(err as Error, event, tracked);
        }
      }).finally(() => {
        if (this.sendChain === chain) this.sendChain = null;
      });
      this.sendChain = chain;
      return;
    }
    this.submitNow(event, args, wrapped, timeoutMs, tracked);
  }

  private wrapAck(ack: Fn, withError: boolean): Fn {
    (ack as any).withError = withError;
    return ack;
  }

  private reportUnsent(err: Error, event: string, tracked: Tracked): void {
    const error = err instanceof DeliveryError ? err : new DeliveryError(err.message, event);
    if (tracked.reject) tracked.reject(error);
    else this.fire(DELIVERY_ERROR_EVENT, [error]);
  }

  private submitNow(event: string, args: unknown[], ack: Fn | null, timeoutMs: number | null,
                    tracked: Tracked): void {
    const session = this.session;
    if (this.mode === "unknown" || (this.mode === "relio" && session === null)) {
      // no session yet (or between two): held until the next CONNECT says what the server is
      if (this.early.length >= this.config.maxOutboxMessages) {
        throw new QueueFull(`outbox full (${this.early.length} messages waiting for a connection)`);
      }
      this.early.push({ event, args, ack, timeout: timeoutMs, tracked });
      return;
    }
    if (this.mode === "plain" || session === null) {
      this.emitPlain(event, args, ack, timeoutMs);
      tracked.resolve?.(false);
      return;
    }
    const engine = session.engine;
    let msgId: Uint8Array;
    try {
      msgId = engine.send(encodePayload([event, ...args]), now(), ack !== null);
    } catch (err) {
      if (err instanceof QueueFull || tracked.reject === undefined) throw err;
      tracked.reject(new DeliveryError((err as Error).message, event));
      return;
    }
    const key = idKey(msgId);
    session.tracked.set(key, { ...tracked, event });
    if (ack !== null) this.await(session, key, event, ack, timeoutMs);
    this.kick();
  }

  private await(session: Session, key: string, event: string, ack: Fn, timeoutMs: number | null): void {
    const waiter: Waiter = { event, withError: (ack as any).withError === true, fn: ack };
    if (timeoutMs !== null) {
      waiter.timer = setTimeout(() => {
        if (session.waiters.get(key) === waiter) {
          session.waiters.delete(key);
          ack(new Error("operation has timed out"));
        }
      }, timeoutMs);
    }
    session.waiters.set(key, waiter);
  }

  private emitPlain(event: string, args: unknown[], ack: Fn | null, timeoutMs: number | null): void {
    if (ack === null) {
      this.sio.emit(event, ...args);
    } else if (timeoutMs !== null) {
      this.sio.timeout(timeoutMs).emit(event, ...args, ack);
    } else if ((ack as any).withError) {
      this.sio.emit(event, ...args, (...rest: unknown[]) => ack(null, ...rest));
    } else {
      this.sio.emit(event, ...args, ack);
    }
  }

  // --- handshake -----------------------------------------------------------------------------
  private authFor(cb: Fn): void {
    const give = (auth: unknown) => {
      const session = this.session;
      if (session !== null && !session.engine.closed && (auth === undefined || auth === null ||
          typeof auth === "object")) {
        cb({ ...(auth as object ?? {}), [PROTOCOL.handshakeKey]: {
          v: PROTOCOL.handshakeVersion, sid: session.sid, credential: session.credential,
          state: toBase64(session.engine.resumeState()) } });
      } else {
        cb(auth);
      }
    };
    if (typeof this.userAuth === "function") this.userAuth(give);
    else give(this.userAuth);
  }

  private onConnectPacket(packet: Packet): void {
    if (packet.nsp !== this.nsp) return;
    if (packet.type !== 0) {
      // CONNECT_ERROR: the server refused this namespace (its connect handler); the Socket will
      // not reconnect, so a session waiting to resume is over
      if (this.session !== null) this.endSession("connection refused by the server", "io server disconnect");
      return;
    }
    const data = packet.data as Record<string, any> | undefined;
    const info = data?.[PROTOCOL.handshakeKey];
    if (info === null || typeof info !== "object" || typeof info.credential !== "string") {
      if (this.session !== null) this.endSession("server does not support relio", "server does not support relio");
      this.mode = "plain";
      return;
    }
    const sid = String(data!.sid);
    const ttl = typeof info.ttl === "number" && info.ttl > 0 ? info.ttl : 120;
    const session = this.session;
    if (info.resumed === true && session !== null && !session.engine.closed && session.sid === sid) {
      session.credential = info.credential;
      session.ttl = ttl;
      this.clearExpiry(session);
      try {
        session.engine.resume(fromBase64(info.state), now());
      } catch (err) {
        const reason = err instanceof RemoteProtocolError ? `protocol error: ${err.reason}` : String(err);
        this.processEvents();
        this.endSession(reason, reason);
        return;
      }
      this.linkUp = true;
      this.resuming = true;
      // Our receive state at once: tells the server the resumed link works
      this.writeBatch(Uint8Array.of(PROTOCOL.version, ...session.engine.resumeState()));
      this.kick();
      return;
    }
    if (session !== null) this.endSession(info.refused || "session expired", info.refused || "session expired");
    const config = fitConfig(this.config, info.max_payload, this.prefix.length);
    this.session = new Session(new Engine(config, now()), sid, info.credential, ttl);
    this.mode = "relio";
    this.linkUp = true;
    this.resuming = false;
  }

  private onSioConnect(): void {
    if (this.mode === "relio" && this.session !== null) {
      // socket.io-client hands a decoded packet to its Socket a tick later: a CONNECT decoded
      // just before its connection closed arrives after the close. That connection is gone
      // (linkUp was cleared); the next one sends its own CONNECT.
      if (!this.linkUp) return;
      const resumed = this.resuming;
      this.resuming = false;
      if (!this.sessionConnected) {
        // a new session, or (after a reload) the first connection of this page to a kept one
        this.recovered = resumed;
        this.sessionConnected = true;
        this.fire("connect", []);
      } else if (resumed && this.suspended) {
        this.suspended = false;
        this.fire(RESUME_EVENT, []);
      }
      this.replayEarly();
      this.kick();
      return;
    }
    this.mode = "plain";
    this.fire("connect", []);
    this.replayEarly();
  }

  private replayEarly(): void {
    const early = this.early;
    this.early = [];
    for (const e of early) {
      try {
        this.submitNow(e.event, e.args, e.ack, e.timeout, e.tracked);
      } catch (err) {
        this.reportUnsent(err as Error, e.event, e.tracked);
      }
    }
  }

  private onSioDisconnect(reason: string, details?: unknown): void {
    const session = this.session;
    if (this.mode !== "relio" || session === null) {
      if (this.mode === "plain") this.fire("disconnect", [reason, details]);
      return;
    }
    this.linkUp = false;
    this.resuming = false;
    session.engine.disconnect(now());
    this.cancelTimer();
    if (reason === "io server disconnect" || reason === "io client disconnect" || this.leaving) {
      this.endSession(reason, reason);
      return;
    }
    this.armExpiry(session);
    if (this.suspended || !this.sessionConnected) return;   // one suspend per resume
    this.suspended = true;
    this.fire(SUSPEND_EVENT, [reason]);
  }

  private armExpiry(session: Session): void {
    if (session.expiry !== null) return;
    session.expiry = setTimeout(() => {
      session.expiry = null;
      if (this.session === session && !this.linkUp) this.endSession("session expired", "session expired");
    }, session.ttl * 1000);
  }

  private clearExpiry(session: Session): void {
    if (session.expiry !== null) clearTimeout(session.expiry);
    session.expiry = null;
  }

  /** The session is over: what is pending fails, the application gets `disconnect`. */
  private endSession(reason: string, disconnectReason: string): void {
    const session = this.session;
    if (session === null) return;
    this.clearExpiry(session);
    if (!session.engine.closed) session.engine.close(reason, now());
    if (this.linkUp) this.flush();
    this.processEvents(session);
    this.session = null;
    this.forget();
    this.linkUp = false;
    this.suspended = false;
    this.cancelTimer();
    for (const waiter of session.waiters.values()) {
      if (waiter.timer) clearTimeout(waiter.timer);
      if (waiter.withError) waiter.fn(new DeliveryError(reason, waiter.event));
    }
    session.waiters.clear();
    if (this.sessionConnected) {
      this.sessionConnected = false;
      this.fire("disconnect", [disconnectReason]);
    }
  }

  // --- engine driving ------------------------------------------------------------------------
  private writeBatch(batch: Uint8Array): void {
    const engine = (this.io as any).engine;
    if (!engine || engine.readyState !== "open") return;
    const carrier = new Uint8Array(this.prefix.length + batch.length);
    carrier.set(this.prefix, 0);
    carrier.set(batch, this.prefix.length);
    engine.write(carrier);
  }

  private onCarrier(data: Uint8Array): void {
    if (data.length === 0 || data[0] > PROTOCOL.maxNamespaceBytes) return;
    const size = data[0];
    if (size !== this.prefix.length - 1) return;
    for (let i = 1; i <= size; i++) if (data[i] !== this.prefix[i]) return;
    const session = this.session;
    if (session === null || !this.linkUp) return;
    try {
      session.engine.receive(data.subarray(1 + size), now());
    } catch (err) {
      if (!(err instanceof RemoteProtocolError)) throw err;
    }
    this.processEvents();
    this.save();
    this.kick();
  }

  private kick(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const session = this.session;
    if (session === null) return;
    if (this.linkUp && this.transportHasRoom(session.engine)) {
      for (const batch of session.engine.dataToSend(now())) this.writeBatch(batch);
    }
    this.processEvents();
    this.save();
    this.armTimer();
  }

  // --- tab persistence ---------------------------------------------------------------------
  private restoreSession(): void {
    let record: Persisted;
    try {
      const text = this.store!.getItem(this.storeKey);
      if (text === null) return;
      record = JSON.parse(text);
      if (record.v !== 1 || Date.now() - record.savedAt > record.ttl * 1000) {
        this.forget();
        return;
      }
      const engine = Engine.restore(record.engine, record.config, now());
      this.session = new Session(engine, record.sid, record.credential, record.ttl);
    } catch {
      this.forget();              // unreadable: start a new session rather than a wrong one
      return;
    }
    this.mode = "relio";
    this.linkUp = false;
  }

  private save(): void {
    const session = this.session;
    if (this.store === null || session === null || session.engine.closed || this.storeFailed) return;
    const record: Persisted = {
      v: 1, sid: session.sid, credential: session.credential, ttl: session.ttl, savedAt: Date.now(),
      config: session.engine.config, engine: session.engine.snapshot(now()),
    };
    try {
      this.store.setItem(this.storeKey, JSON.stringify(record));
    } catch (err) {
      // over the storage quota: a stale record must not be resumed later, so none is kept
      this.storeFailed = true;
      this.forget();
      console.warn(`relio-client: the session is no longer kept across reloads (${(err as Error).name})`);
    }
  }

  /** Remove the kept session (it ended, or cannot be kept). */
  private forget(): void {
    if (this.store === null) return;
    try {
      this.store.removeItem(this.storeKey);
    } catch {
      /* storage unavailable: nothing kept */
    }
  }

  /** Whether the engine.io transport can take more now; if not, flush again when it drains. */
  private transportHasRoom(engine: Engine): boolean {
    const eio = (this.io as any).engine;
    if (!eio) return true;
    engine.inflightBytesCap = eio.transport?.name === "polling" ? POLLING_INFLIGHT_BYTES : null;
    if ((eio.writeBuffer?.length ?? 0) < WRITE_QUEUE_LIMIT) return true;
    if (this.drainWaiter !== eio) {
      this.drainWaiter = eio;
      eio.once("drain", () => {
        if (this.drainWaiter === eio) this.drainWaiter = null;
        this.kick();
      });
    }
    return false;
  }

  private armTimer(): void {
    const session = this.session;
    const when = session === null ? null : session.engine.getTimer();
    if (when === null) {
      this.cancelTimer();
      return;
    }
    if (this.timer !== null && this.timerAt <= when) return;
    this.cancelTimer();
    this.timerAt = when;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      const s = this.session;
      if (s === null) return;
      s.engine.handleTimer(now());
      this.flush();
    }, Math.max(0, (when - now()) * 1000));
  }

  private cancelTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  private processEvents(session: Session | null = this.session): void {
    if (session === null) return;
    let event: EngineEvent | undefined;
    while ((event = session.engine.nextEvent()) !== undefined) this.onEngineEvent(session, event);
  }

  private onEngineEvent(session: Session, event: EngineEvent): void {
    switch (event.kind) {
      case "received":
        return this.onMessage(session, event.msgId, event.payload, event.request);
      case "response":
        return this.onResponse(session, event.msgId, event.replyTo, event.payload, event.request);
      case "delivered":
        for (const id of event.msgIds) {
          const key = idKey(id);
          const tracked = session.tracked.get(key);
          session.tracked.delete(key);
          tracked?.resolve?.(true);
        }
        return;
      case "expired": {
        const key = idKey(event.msgId);
        const tracked = session.tracked.get(key);
        session.tracked.delete(key);
        const error = new DeliveryError(event.reason, tracked?.event ?? null);
        const waiter = session.waiters.get(key);
        session.waiters.delete(key);
        if (waiter?.timer) clearTimeout(waiter.timer);
        if (tracked?.reject) tracked.reject(error);
        else if (waiter?.withError) waiter.fn(error);
        else this.fire(DELIVERY_ERROR_EVENT, [error]);
        return;
      }
      case "closed":
        if (this.session === session) {
          // the server ended the session (CLOSE), or we closed it for a protocol error
          queueMicrotask(() => {
            if (this.session !== session) return;
            this.endSession(event.reason, event.byPeer ? "io server disconnect" : event.reason);
            if (!event.byPeer) this.sio.disconnect();
          });
        }
        return;
    }
  }

  private answer(session: Session, requestId: Uint8Array, args: unknown[], chained: Fn | null = null): void {
    if (this.session !== session || session.engine.closed) return;
    let replyId: Uint8Array;
    try {
      replyId = session.engine.reply(requestId, encodePayload(args), now(), chained !== null);
    } catch (err) {
      this.fire(DELIVERY_ERROR_EVENT, [new DeliveryError(`the reply could not be sent: ${(err as Error).message}`)]);
      return;
    }
    if (chained !== null) this.await(session, idKey(replyId), "(reply)", chained, null);
    this.kick();
  }

  /** An ack function handed to a handler: calling it answers the request, once. A function as
   *  its last argument makes the answer a chained reply (that function receives the answer). */
  private ackFor(session: Session, requestId: Uint8Array): Fn {
    let sent = false;
    return (...args: unknown[]) => {
      if (sent) return;
      sent = true;
      const chained = args.length && typeof args[args.length - 1] === "function" ? args.pop() as Fn : null;
      this.answer(session, requestId, args, chained);
    };
  }

  private onMessage(session: Session, msgId: Uint8Array, payload: Uint8Array, request: boolean): void {
    let items: unknown[];
    try {
      items = decodePayload(payload);
      if (typeof items[0] !== "string") throw new RemoteProtocolError("event without a name");
    } catch (err) {
      this.protocolFailure(session, err as Error);
      return;
    }
    const event = items[0] as string;
    const args = items.slice(1);
    if (RESERVED.has(event)) {
      if (request) this.answer(session, msgId, []);
      return;
    }
    if (request) {
      const ack = this.ackFor(session, msgId);
      if (!this.hasListeners(event) && this.anyListeners.length === 0) {
        ack();          // as python-socketio's client: an unhandled request is answered empty
        return;
      }
      this.dispatch(event, [...args, ack]);
      return;
    }
    this.dispatch(event, args);
  }

  private onResponse(session: Session, msgId: Uint8Array, replyTo: Uint8Array, payload: Uint8Array,
                     request: boolean): void {
    const key = idKey(replyTo);
    const waiter = session.waiters.get(key);
    session.waiters.delete(key);
    if (waiter?.timer) clearTimeout(waiter.timer);
    let args: unknown[] | string;
    try {
      args = decodeReply(payload);
    } catch (err) {
      this.protocolFailure(session, err as Error);
      return;
    }
    if (typeof args === "string") {
      const error = new DeliveryError(args, waiter?.event ?? null);
      if (waiter?.withError) waiter.fn(error);
      else this.fire(DELIVERY_ERROR_EVENT, [error]);
      return;
    }
    if (waiter === undefined) {
      if (request) this.answer(session, msgId, []);
      return;
    }
    const callArgs = request ? [...args, this.ackFor(session, msgId)] : args;
    try {
      if (waiter.withError) waiter.fn(null, ...callArgs);
      else waiter.fn(...callArgs);
    } catch (err) {
      queueMicrotask(() => { throw err; });
    }
  }

  private protocolFailure(session: Session, err: Error): void {
    const reason = err instanceof RemoteProtocolError ? err.reason : err.message;
    this.endSession(`protocol error: ${reason}`, `protocol error: ${reason}`);
    this.sio.disconnect();
  }

  private dispatch(event: string, args: unknown[]): void {
    if (!LIFECYCLE.has(event)) {
      for (const fn of [...this.anyListeners]) fn.call(this, event, ...args);
    }
    this.fire(event, args);
  }

  private fire(event: string, args: unknown[]): void {
    for (const fn of this.listeners(event)) {
      try {
        fn.apply(this, args);
      } catch (err) {
        queueMicrotask(() => { throw err; });
      }
    }
  }

  /** The engine's counters (null against a plain server). */
  get sessionStats(): Record<string, number> | null {
    return this.session === null ? null : this.session.engine.stats;
  }
}

function containsBlob(value: unknown): boolean {
  if (typeof Blob !== "undefined" && value instanceof Blob) return true;
  if (Array.isArray(value)) return value.some(containsBlob);
  if (value !== null && typeof value === "object" && !ArrayBuffer.isView(value) && !(value instanceof ArrayBuffer)) {
    return Object.values(value).some(containsBlob);
  }
  return false;
}

async function resolveBlobs(value: unknown): Promise<unknown> {
  if (typeof Blob !== "undefined" && value instanceof Blob) return new Uint8Array(await value.arrayBuffer());
  if (Array.isArray(value)) return Promise.all(value.map(resolveBlobs));
  if (value !== null && typeof value === "object" && !ArrayBuffer.isView(value) && !(value instanceof ArrayBuffer)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = await resolveBlobs(v);
    return out;
  }
  return value;
}

/** The engine's sizes cut to what one engine.io message to the server may hold (its
 *  max_http_buffer_size, said in the handshake as `max_payload`): relio.binding.wire.fit_config. */
export function fitConfig(config: Config, maxPayload: unknown, prefixLength: number): Config {
  if (typeof maxPayload !== "number" || !Number.isInteger(maxPayload) || maxPayload <= 0) return config;
  const budget = maxPayload - prefixLength;
  const overhead = 1024;
  if (budget - overhead < 1024 || config.maxBatchSize <= budget) return config;
  return {
    ...config,
    maxBatchSize: budget,
    chunkSize: Math.min(config.chunkSize, budget - overhead),
    coalesceBytes: Math.min(config.coalesceBytes, budget),
  };
}
