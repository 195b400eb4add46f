// Application payloads inside relio messages (docs/PROTOCOL.md section 13, relio/binding/payload.py):
//   payload    = count (LEB128 varint) attachment{count} json
//   attachment = length (LEB128 varint) bytes
// `json` is `[event, ...args]` for an event and `[...args]` for a reply, binary arguments replaced by
// Socket.IO's placeholders {"_placeholder": true, "num": n}. A reply `{"failed": reason}` says the
// peer could not answer.

import { PROTOCOL } from "./config.js";
import { RemoteProtocolError } from "./errors.js";

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder("utf-8", { fatal: true });

/** Binary values relio carries: ArrayBuffer, typed arrays and DataView (Node Buffers included). */
export function isBinary(value: unknown): value is ArrayBuffer | ArrayBufferView {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

function toBytes(value: ArrayBuffer | ArrayBufferView): Uint8Array {
  return value instanceof ArrayBuffer
    ? new Uint8Array(value)
    : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function deconstruct(data: unknown, attachments: Uint8Array[]): unknown {
  if (isBinary(data)) {
    attachments.push(toBytes(data));
    return { _placeholder: true, num: attachments.length - 1 };
  }
  if (Array.isArray(data)) return data.map((item) => deconstruct(item, attachments));
  if (data !== null && typeof data === "object" && !(data instanceof Date) &&
      typeof (data as { toJSON?: unknown }).toJSON !== "function") {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(data)) out[key] = deconstruct(value, attachments);
    return out;
  }
  return data;
}

function leb128Size(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

function writeLeb128(out: Uint8Array, pos: number, value: number): number {
  while (value >= 0x80) {
    out[pos++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[pos++] = value;
  return pos;
}

/** Encode a JSON list that may hold binary values anywhere. */
export function encodePayload(items: unknown[]): Uint8Array {
  const attachments: Uint8Array[] = [];
  const json = TEXT_ENCODER.encode(JSON.stringify(deconstruct(items, attachments)));
  let size = leb128Size(attachments.length) + json.length;
  for (const a of attachments) size += leb128Size(a.length) + a.length;
  const out = new Uint8Array(size);
  let pos = writeLeb128(out, 0, attachments.length);
  for (const a of attachments) {
    pos = writeLeb128(out, pos, a.length);
    out.set(a, pos);
    pos += a.length;
  }
  out.set(json, pos);
  return out;
}

/** A failure reply: the request failed at this side and no answer will come. */
export function encodeFailure(reason: string): Uint8Array {
  return encodePayloadRaw(JSON.stringify({ failed: reason.slice(0, PROTOCOL.maxFailureReason) }));
}

function encodePayloadRaw(json: string): Uint8Array {
  const text = TEXT_ENCODER.encode(json);
  const out = new Uint8Array(1 + text.length);
  out.set(text, 1);
  return out;
}

/** How binary arguments are handed to the application: Node Buffers in Node (as socket.io-client
 *  does there), ArrayBuffers in the browser. */
export type BinaryFactory = (bytes: Uint8Array) => unknown;

export const defaultBinary: BinaryFactory = (() => {
  const B = (globalThis as { Buffer?: { from(a: ArrayBuffer, o: number, l: number): unknown } }).Buffer;
  if (B !== undefined) return (bytes: Uint8Array) => B.from(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
  return (bytes: Uint8Array) =>
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
})();

function reconstruct(data: unknown, attachments: unknown[]): unknown {
  if (Array.isArray(data)) return data.map((item) => reconstruct(item, attachments));
  if (data !== null && typeof data === "object") {
    const obj = data as Record<string, unknown>;
    if (obj._placeholder === true && Object.keys(obj).length === 2) {
      const num = obj.num;
      if (typeof num !== "number" || !Number.isInteger(num) || num < 0 || num >= attachments.length) {
        throw new RemoteProtocolError("invalid application payload: bad attachment number");
      }
      return attachments[num];
    }
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(obj)) out[key] = reconstruct(value, attachments);
    return out;
  }
  return data;
}

function readLeb128(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 9; i++) {
    if (pos >= buf.length) break;
    const byte = buf[pos++];
    value += (byte & 0x7f) * scale;
    if (!(byte & 0x80)) return [value, pos];
    scale *= 128;
  }
  throw new RemoteProtocolError("invalid application payload: truncated or oversized varint");
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(TEXT_DECODER.decode(bytes));
  } catch (exc) {
    throw new RemoteProtocolError(`invalid application payload: ${(exc as Error).message}`);
  }
}

/** Decode an event's or a reply's payload into its list. */
export function decodePayload(payload: Uint8Array, binary: BinaryFactory = defaultBinary): unknown[] {
  let items: unknown;
  if (payload.length && payload[0] === 0) {
    items = parseJson(payload.subarray(1));
  } else {
    let [count, pos] = readLeb128(payload, 0);
    const attachments: unknown[] = [];
    for (let i = 0; i < count; i++) {
      let size: number;
      [size, pos] = readLeb128(payload, pos);
      if (pos + size > payload.length) {
        throw new RemoteProtocolError("invalid application payload: attachment runs past the end");
      }
      attachments.push(binary(payload.slice(pos, pos + size)));
      pos += size;
    }
    items = reconstruct(parseJson(payload.subarray(pos)), attachments);
  }
  if (!Array.isArray(items)) throw new RemoteProtocolError("invalid application payload: not a list");
  return items;
}

/** A reply's arguments, or (a string) why the peer could not answer. */
export function decodeReply(payload: Uint8Array, binary: BinaryFactory = defaultBinary): unknown[] | string {
  if (payload.length >= 2 && payload[0] === 0 && payload[1] === 0x7b) {
    const failure = parseJson(payload.subarray(1)) as Record<string, unknown> | null;
    if (failure !== null && typeof failure === "object" && Object.keys(failure).length === 1 &&
        typeof failure.failed === "string") {
      return failure.failed.slice(0, PROTOCOL.maxFailureReason);
    }
    throw new RemoteProtocolError("invalid application payload: not a list");
  }
  return decodePayload(payload, binary);
}
