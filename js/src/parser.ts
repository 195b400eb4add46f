// The custom socket.io parser (ManagerOptions.parser) that lets relio carriers through: it wraps
// the stock socket.io-parser Decoder, counts the attachments that BINARY_EVENT / BINARY_ACK packets
// announce, and hands every other binary engine.io message to relio instead of letting the stock
// decoder throw ("got binary data when not reconstructing a packet"), which would make the
// Manager close the connection. Socket.IO's string format is unchanged. CONNECT packets are shown
// to relio before the Socket sees them (the Socket keeps only `sid` and `pid` of the reply).

export interface Packet {
  type: number;
  nsp: string;
  data?: unknown;
  id?: number;
}

export interface CarrierSink {
  /** a binary engine.io message that is not a packet's attachment */
  onCarrier(data: Uint8Array): void;
  /** a decoded CONNECT or CONNECT_ERROR packet, before socket.io-client handles it */
  onConnectPacket(packet: Packet): void;
}

type Listener = (...args: unknown[]) => void;

interface StockDecoder {
  add(chunk: unknown): void;
  destroy(): void;
  on(event: string, fn: Listener): unknown;
}

const CONNECT = 0;
const CONNECT_ERROR = 4;
const BINARY_EVENT = "5";
const BINARY_ACK = "6";

function asBytes(chunk: unknown): Uint8Array | null {
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return null;
}

/** A socket.io-client `parser` option ({Encoder, Decoder}) whose decoders report to `sink`. */
export function carrierParser(stock: { Encoder: new () => unknown; Decoder: new () => StockDecoder },
                              sink: CarrierSink): { Encoder: new () => unknown; Decoder: new () => unknown } {
  class Decoder {
    private readonly inner = new stock.Decoder();
    private readonly listeners = new Map<string, Listener[]>();
    private attachmentsLeft = 0;

    constructor() {
      this.inner.on("decoded", (packet: unknown) => {
        const p = packet as Packet;
        if (p.type === CONNECT || p.type === CONNECT_ERROR) sink.onConnectPacket(p);
        this.emit("decoded", p);
      });
    }

    add(chunk: unknown): void {
      if (typeof chunk === "string") {
        const type = chunk.charAt(0);
        if (type === BINARY_EVENT || type === BINARY_ACK) {
          const dash = chunk.indexOf("-");
          const n = Number(chunk.slice(1, dash));
          this.inner.add(chunk);              // throws on a malformed header, as before
          this.attachmentsLeft = Number.isInteger(n) && n > 0 ? n : 0;
          return;
        }
        this.inner.add(chunk);
        return;
      }
      const bytes = asBytes(chunk);
      if (bytes !== null && this.attachmentsLeft === 0) {
        sink.onCarrier(bytes);
        return;
      }
      if (this.attachmentsLeft > 0) this.attachmentsLeft--;
      this.inner.add(chunk);
    }

    destroy(): void {
      this.attachmentsLeft = 0;
      this.inner.destroy();
    }

    on(event: string, fn: Listener): this {
      const list = this.listeners.get(event) ?? [];
      list.push(fn);
      this.listeners.set(event, list);
      return this;
    }

    off(event?: string, fn?: Listener): this {
      if (event === undefined) this.listeners.clear();
      else if (fn === undefined) this.listeners.delete(event);
      else this.listeners.set(event, (this.listeners.get(event) ?? []).filter((f) => f !== fn));
      return this;
    }

    removeListener(event?: string, fn?: Listener): this {
      return this.off(event, fn);
    }

    private emit(event: string, ...args: unknown[]): void {
      for (const fn of [...(this.listeners.get(event) ?? [])]) fn(...args);
    }
  }
  return { Encoder: stock.Encoder, Decoder };
}
