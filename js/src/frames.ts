// The wire codec (docs/PROTOCOL.md sections 2-5): QUIC varints, batches and DATA/ACK/CLOSE frames.
// Encoders write the shortest varints, as the reference does; decoders accept any encoding and
// check every rule of section 5, raising RemoteProtocolError with the reference's reason texts.

import { PROTOCOL } from "./config.js";
import { RemoteProtocolError } from "./errors.js";

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder(); // non-fatal: invalid UTF-8 in a CLOSE reason is replaced

export function varintSize(value: number): number {
  if (value < 0x40) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x40000000) return 4;
  return 8;
}

/** Write `value` (0 <= value < 2^53) at `pos`; returns the position after it. */
export function writeVarint(out: Uint8Array, pos: number, value: number): number {
  if (value < 0x40) {
    out[pos] = value;
    return pos + 1;
  }
  if (value < 0x4000) {
    out[pos] = 0x40 | (value >>> 8);
    out[pos + 1] = value & 0xff;
    return pos + 2;
  }
  if (value < 0x40000000) {
    out[pos] = 0x80 | (value >>> 24);
    out[pos + 1] = (value >>> 16) & 0xff;
    out[pos + 2] = (value >>> 8) & 0xff;
    out[pos + 3] = value & 0xff;
    return pos + 4;
  }
  const high = Math.floor(value / 2 ** 32);
  const low = value >>> 0;
  out[pos] = 0xc0 | (high >>> 24);
  out[pos + 1] = (high >>> 16) & 0xff;
  out[pos + 2] = (high >>> 8) & 0xff;
  out[pos + 3] = high & 0xff;
  out[pos + 4] = low >>> 24;
  out[pos + 5] = (low >>> 16) & 0xff;
  out[pos + 6] = (low >>> 8) & 0xff;
  out[pos + 7] = low & 0xff;
  return pos + 8;
}

export function encodeVarint(value: number): Uint8Array {
  const out = new Uint8Array(varintSize(value));
  writeVarint(out, 0, value);
  return out;
}

/** A reader over one batch; every read checks the bytes left. */
export class Reader {
  pos: number;
  constructor(readonly buf: Uint8Array, pos = 0) {
    this.pos = pos;
  }

  get left(): number {
    return this.buf.length - this.pos;
  }

  /** A varint as a Number; values above 2^53 lose precision but stay above every limit they are
   *  checked against, so they are still rejected where the protocol bounds them. */
  varint(what: string): number {
    const buf = this.buf;
    if (this.pos >= buf.length) throw new RemoteProtocolError(`truncated frame: missing ${what}`);
    const n = 1 << (buf[this.pos] >> 6);
    if (this.pos + n > buf.length) {
      throw new RemoteProtocolError(`truncated frame: ${what} needs ${n} bytes`);
    }
    let value = buf[this.pos] & 0x3f;
    for (let i = 1; i < n; i++) value = value * 256 + buf[this.pos + i];
    this.pos += n;
    return value;
  }

  id(what: string): Uint8Array {
    if (this.left < PROTOCOL.idSize) {
      throw new RemoteProtocolError(`truncated frame: ${what} needs 16 bytes`);
    }
    const id = this.buf.slice(this.pos, this.pos + PROTOCOL.idSize);
    this.pos += PROTOCOL.idSize;
    return id;
  }
}

export interface DataFrame {
  type: 1;
  flags: number;
  seq: number;
  msgId: Uint8Array;
  replyTo: Uint8Array | null;
  total: number;
  offset: number;
  payload: Uint8Array;
}

export interface AckFrame {
  type: 2;
  cumulative: number;
  ackDelayUs: number;
  /** half-open [start, end) intervals, ascending */
  ranges: Array<[number, number]>;
}

export interface CloseFrame {
  type: 3;
  code: number;
  reason: string;
}

export type Frame = DataFrame | AckFrame | CloseFrame;

export interface Limits {
  maxBatchSize: number;
  maxFramesPerBatch: number;
  maxAckRanges: number;
}

/** Check a batch's size and version byte (section 5, batch rows). */
export function checkBatchHeader(data: Uint8Array, maxBatchSize: number): void {
  if (data.length < 2) {
    throw new RemoteProtocolError("truncated batch: shorter than a version byte and one frame");
  }
  if (data.length > maxBatchSize) {
    throw new RemoteProtocolError(`batch of ${data.length} bytes exceeds the ${maxBatchSize} allowed`);
  }
  if (data[0] !== PROTOCOL.version) {
    throw new RemoteProtocolError(`unsupported protocol version ${data[0]}`);
  }
}

/** Parse the frame at the reader's position (its type byte first). */
export function readFrame(r: Reader, maxAckRanges: number): Frame {
  if (r.left < 1) throw new RemoteProtocolError("truncated batch: expected a frame");
  const type = r.buf[r.pos++];
  if (type === PROTOCOL.frameData) return readData(r);
  if (type === PROTOCOL.frameAck) return readAckBody(r, maxAckRanges);
  if (type === PROTOCOL.frameClose) return readClose(r);
  throw new RemoteProtocolError(`unknown frame type 0x${type.toString(16).padStart(2, "0")}`);
}

function readData(r: Reader): DataFrame {
  if (r.left < 1) throw new RemoteProtocolError("truncated frame: missing flags");
  const flags = r.buf[r.pos++];
  if (flags & ~PROTOCOL.knownFlags) {
    throw new RemoteProtocolError(`unknown DATA flags 0x${flags.toString(16).padStart(2, "0")}`);
  }
  const seq = r.varint("sequence number");
  const msgId = r.id("message id");
  const replyTo = flags & PROTOCOL.flagResponse ? r.id("reply-to id") : null;
  let total = 0;
  let offset = 0;
  const chunk = (flags & PROTOCOL.flagChunk) !== 0;
  if (chunk) {
    total = r.varint("chunk total");
    offset = r.varint("chunk offset");
  }
  const length = r.varint("payload length");
  if (length > r.left) {
    throw new RemoteProtocolError(
      `truncated frame: payload length ${length} exceeds the ${r.left} bytes left`);
  }
  if (chunk) {
    if (total === 0) throw new RemoteProtocolError("chunk of an empty message");
    if (length === 0) throw new RemoteProtocolError("empty chunk");
    if (offset >= total || offset + length > total) {
      throw new RemoteProtocolError(
        `chunk [${offset}, +${length}) overruns its message of ${total} bytes`);
    }
  }
  const payload = r.buf.subarray(r.pos, r.pos + length);
  r.pos += length;
  return { type: 1, flags, seq, msgId, replyTo, total, offset, payload };
}

/** An ACK's fields after its type byte (also the whole of a resume state). */
export function readAckBody(r: Reader, maxAckRanges: number): AckFrame {
  const cumulative = r.varint("cumulative ack");
  const ackDelayUs = r.varint("ack delay");
  const count = r.varint("ack range count");
  if (count > maxAckRanges) {
    throw new RemoteProtocolError(`ACK carries ${count} ranges, more than the ${maxAckRanges} allowed`);
  }
  const ranges: Array<[number, number]> = [];
  let end = cumulative;
  for (let i = 0; i < count; i++) {
    const gap = r.varint("ack range gap");
    const length = r.varint("ack range length");
    if (gap === 0 || length === 0) {
      throw new RemoteProtocolError("ACK range with zero gap or zero length");
    }
    const start = end + gap;
    end = start + length;
    if (end >= PROTOCOL.varintLimit) {
      throw new RemoteProtocolError("ACK range beyond the sequence number space");
    }
    ranges.push([start, end]);
  }
  return { type: 2, cumulative, ackDelayUs, ranges };
}

function readClose(r: Reader): CloseFrame {
  const code = r.varint("close code");
  const length = r.varint("close reason length");
  if (length > PROTOCOL.maxCloseReason) {
    throw new RemoteProtocolError(`CLOSE reason of ${length} bytes exceeds 256`);
  }
  if (length > r.left) throw new RemoteProtocolError("truncated frame: CLOSE reason");
  const reason = TEXT_DECODER.decode(r.buf.subarray(r.pos, r.pos + length));
  r.pos += length;
  return { type: 3, code, reason };
}

/** Decode a whole batch (the reference's decode_batch): every frame, or RemoteProtocolError. */
export function decodeBatch(data: Uint8Array, limits: Limits): Frame[] {
  checkBatchHeader(data, limits.maxBatchSize);
  const r = new Reader(data, 1);
  const frames: Frame[] = [];
  while (r.left > 0) {
    if (frames.length >= limits.maxFramesPerBatch) {
      throw new RemoteProtocolError(`batch holds more than ${limits.maxFramesPerBatch} frames`);
    }
    const frame = readFrame(r, limits.maxAckRanges);
    frames.push(frame);
    if (frame.type === 3) break;
  }
  return frames;
}

export function dataHeaderSize(seq: number, flags: number, total: number, offset: number,
                               length: number): number {
  let size = 2 + varintSize(seq) + PROTOCOL.idSize + varintSize(length);
  if (flags & PROTOCOL.flagResponse) size += PROTOCOL.idSize;
  if (flags & PROTOCOL.flagChunk) size += varintSize(total) + varintSize(offset);
  return size;
}

/** Write a DATA frame into `out` at `pos`; returns the position after it. */
export function writeData(out: Uint8Array, pos: number, seq: number, msgId: Uint8Array,
                          payload: Uint8Array, flags: number, replyTo: Uint8Array | null,
                          total: number, offset: number): number {
  out[pos++] = PROTOCOL.frameData;
  out[pos++] = flags;
  pos = writeVarint(out, pos, seq);
  out.set(msgId, pos);
  pos += PROTOCOL.idSize;
  if (flags & PROTOCOL.flagResponse) {
    out.set(replyTo as Uint8Array, pos);
    pos += PROTOCOL.idSize;
  }
  if (flags & PROTOCOL.flagChunk) {
    pos = writeVarint(out, pos, total);
    pos = writeVarint(out, pos, offset);
  }
  pos = writeVarint(out, pos, payload.length);
  out.set(payload, pos);
  return pos + payload.length;
}

export function encodeData(seq: number, msgId: Uint8Array, payload: Uint8Array, flags = 0,
                           replyTo: Uint8Array | null = null, total = 0, offset = 0): Uint8Array {
  const out = new Uint8Array(dataHeaderSize(seq, flags, total, offset, payload.length) +
                             payload.length);
  writeData(out, 0, seq, msgId, payload, flags, replyTo, total, offset);
  return out;
}

/** An ACK frame; `ranges` are [start, end) intervals above `cumulative`, ascending, not touching. */
export function encodeAck(cumulative: number, ranges: ReadonlyArray<readonly [number, number]> = [],
                          ackDelayUs = 0): Uint8Array {
  const parts: number[] = [cumulative, ackDelayUs, ranges.length];
  let end = cumulative;
  for (const [start, stop] of ranges) {
    parts.push(start - end, stop - start);
    end = stop;
  }
  let size = 1;
  for (const v of parts) size += varintSize(v);
  const out = new Uint8Array(size);
  out[0] = PROTOCOL.frameAck;
  let pos = 1;
  for (const v of parts) pos = writeVarint(out, pos, v);
  return out;
}

/** The UTF-8 bytes of `reason`, cut to 256 (possibly inside a character, as the reference does). */
export function encodeClose(code: number, reason: string): Uint8Array {
  const text = TEXT_ENCODER.encode(reason).subarray(0, PROTOCOL.maxCloseReason);
  const out = new Uint8Array(1 + varintSize(code) + varintSize(text.length) + text.length);
  out[0] = PROTOCOL.frameClose;
  let pos = writeVarint(out, 1, code);
  pos = writeVarint(out, pos, text.length);
  out.set(text, pos);
  return out;
}

export function encodeBatch(frames: Uint8Array[]): Uint8Array {
  let size = 1;
  for (const f of frames) size += f.length;
  const out = new Uint8Array(size);
  out[0] = PROTOCOL.version;
  let pos = 1;
  for (const f of frames) {
    out.set(f, pos);
    pos += f.length;
  }
  return out;
}
