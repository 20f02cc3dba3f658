// A bounded in-process cache: least recently used entries go first, and none
// outlives its TTL. Counts hits and misses for /metrics.

export interface CacheStats {
  hits: number
  misses: number
  evictions: number
  invalidations: number
}

export class LruTtlCache<Value> {
  readonly #entries = new Map<string, { value: Value; expiresAt: number }>()
  readonly #maxEntries: number
  readonly #ttlMs: number
  readonly #now: () => number
  readonly stats: CacheStats = { hits: 0, misses: 0, evictions: 0, invalidations: 0 }

  constructor(options: { maxEntries: number; ttlMs: number; now?: () => number }) {
    this.#maxEntries = Math.max(1, options.maxEntries)
    this.#ttlMs = options.ttlMs
    this.#now = options.now ?? Date.now
  }

  get size(): number {
    return this.#entries.size
  }

  get(key: string): Value | undefined {
    const entry = this.#entries.get(key)
    if (!entry || entry.expiresAt <= this.#now()) {
      if (entry) this.#entries.delete(key)
      this.stats.misses++
      return undefined
    }
    // Map keeps insertion order: re-inserting marks the entry most recently used.
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    this.stats.hits++
    return entry.value
  }

  set(key: string, value: Value): void {
    this.#entries.delete(key)
    this.#entries.set(key, { value, expiresAt: this.#now() + this.#ttlMs })
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string
      this.#entries.delete(oldest)
      this.stats.evictions++
    }
  }

  delete(key: string): void {
    if (this.#entries.delete(key)) this.stats.invalidations++
  }

  clear(): void {
    this.stats.invalidations += this.#entries.size
    this.#entries.clear()
  }

  /** Hits over lookups, 0 before any lookup. */
  hitRate(): number {
    const lookups = this.stats.hits + this.stats.misses
    return lookups === 0 ? 0 : this.stats.hits / lookups
  }
}
