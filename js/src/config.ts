// Protocol constants and the tunable limits of one relio session (docs/PROTOCOL.md sections 2, 10).
// This module owns every number the engine and the binding use; nothing else hard-codes one.

/** Fixed by protocol version 1: changing any of these is a new protocol version. */
export const PROTOCOL = Object.freeze({
  version: 1,
  frameData: 0x01,
  frameAck: 0x02,
  frameClose: 0x03,
  flagRequest: 0x01,
  flagResponse: 0x02,
  flagChunk: 0x04,
  knownFlags: 0x07,
  idSize: 16,
  maxCloseReason: 256,
  /** varints hold values below 2^62 */
  varintLimit: 2 ** 62,
  /** RFC 6298's clock granularity G, seconds */
  clockGranularity: 0.001,
  maxBackoff: 16,
  closeNormal: 0,
  closeProtocolError: 1,
  closeDeliveryTimeout: 2,
  /** Socket.IO binding (section 13) */
  handshakeKey: "__relio",
  handshakeVersion: 1,
  queryKey: "relio",
  maxNamespaceBytes: 127,
  maxFailureReason: 200,
});

/** relio.Config's fields that a client needs, with the Python defaults (sizes in bytes, times in
 *  seconds). "Peer" limits (max_message_size, max_batch_size, max_frames_per_batch,
 *  receive_window, max_ack_ranges, max_ack_delay, max_inflight_messages) must match the server's. */
export interface Config {
  chunkSize: number;
  maxMessageSize: number;
  maxBatchSize: number;
  maxFramesPerBatch: number;
  coalesceBytes: number;
  receiveWindow: number;
  maxReorderBytes: number;
  /** chunked messages held ahead of a gap at once (new ones beyond: refused, not acked) */
  maxReassemblies: number;
  /** chunk bytes held ahead of a gap */
  maxReassemblyBytes: number;
  maxAckRanges: number;
  maxAckDelay: number;
  ackEvery: number;
  ackEveryBytes: number;
  idSetCapacity: number;
  responseCacheEntries: number;
  responseCacheBytes: number;
  responseCacheTtl: number;
  maxOutboxMessages: number;
  maxOutboxBytes: number;
  maxInflightMessages: number;
  maxInflightBytes: number;
  initialRto: number;
  minRto: number;
  maxRto: number;
  /** close the session if a message stays undelivered this long; null: never */
  deliveryTimeout: number | null;
}

export const DEFAULT_CONFIG: Readonly<Config> = Object.freeze({
  chunkSize: 65536,
  maxMessageSize: 64 * 1024 * 1024,
  maxBatchSize: 131072,
  maxFramesPerBatch: 4096,
  coalesceBytes: 61440,
  receiveWindow: 8192,
  maxReorderBytes: 16 * 1024 * 1024,
  maxReassemblies: 64,
  maxReassemblyBytes: 128 * 1024 * 1024,
  maxAckRanges: 32,
  maxAckDelay: 0.010,
  ackEvery: 64,
  ackEveryBytes: 262144,
  idSetCapacity: 100000,
  responseCacheEntries: 10000,
  responseCacheBytes: 16 * 1024 * 1024,
  responseCacheTtl: 120.0,
  maxOutboxMessages: 10000,
  maxOutboxBytes: 256 * 1024 * 1024,
  maxInflightMessages: 4096,
  maxInflightBytes: 1024 * 1024,
  initialRto: 1.0,
  minRto: 0.2,
  maxRto: 10.0,
  deliveryTimeout: null,
});

export function makeConfig(overrides: Partial<Config> = {}): Config {
  const config = { ...DEFAULT_CONFIG, ...overrides };
  if (config.chunkSize + 256 > config.maxBatchSize) {
    throw new RangeError("relio config: chunkSize + 256 must be <= maxBatchSize");
  }
  if (config.maxInflightMessages < 1 || config.maxInflightMessages > config.receiveWindow) {
    throw new RangeError("relio config: 1 <= maxInflightMessages <= receiveWindow");
  }
  return config;
}
