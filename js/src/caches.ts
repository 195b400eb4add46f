// The receiver's bounded memories (docs/PROTOCOL.md 7.2, 8): the set of delivered message ids
// (dedup, oldest forgotten first) and the response cache (LRU by count and bytes, plus a TTL).
// Ids are keyed by their 16 bytes as a latin-1 string (cheap to hash, exact).

export function idKey(id: Uint8Array): string {
  return String.fromCharCode.apply(null, id as unknown as number[]);
}

export class IdSet {
  readonly ids = new Set<string>();
  constructor(private readonly capacity: number) {}

  has(key: string): boolean {
    return this.ids.has(key);
  }

  add(key: string): void {
    this.ids.add(key);
    if (this.ids.size > this.capacity) {
      this.ids.delete(this.ids.values().next().value as string);
    }
  }

  get size(): number {
    return this.ids.size;
  }
}

export interface CachedResponse {
  responseId: Uint8Array;
  flags: number;
  payload: Uint8Array;
  at: number;
}

export class ResponseCache {
  private readonly entries = new Map<string, CachedResponse>();
  private bytes = 0;
  constructor(private readonly maxEntries: number, private readonly maxBytes: number,
              private readonly ttl: number) {}

  private static size(value: CachedResponse): number {
    return 17 + value.payload.length;
  }

  put(requestKey: string, value: CachedResponse): void {
    this.delete(requestKey);
    const size = ResponseCache.size(value);
    if (size > this.maxBytes) return;          // larger than the bound: not cached
    this.entries.set(requestKey, value);
    this.bytes += size;
    for (const [key] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.delete(key);
    }
  }

  /** The entry (now most recently used), or undefined if absent or older than the TTL. */
  get(requestKey: string, now: number): CachedResponse | undefined {
    const value = this.entries.get(requestKey);
    if (value === undefined) return undefined;
    this.entries.delete(requestKey);
    if (now - value.at > this.ttl) {
      this.bytes -= ResponseCache.size(value);
      return undefined;
    }
    this.entries.set(requestKey, value);
    return value;
  }

  delete(requestKey: string): void {
    const value = this.entries.get(requestKey);
    if (value !== undefined) {
      this.entries.delete(requestKey);
      this.bytes -= ResponseCache.size(value);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entries, least recently used first (for a snapshot). */
  dump(): Array<[string, CachedResponse]> {
    return [...this.entries];
  }
}
