// The write-ahead log in IndexedDB, shared by every tab of the origin.
// One object store per queue, keyed by an auto-incremented seq (oldest first),
// plus each queue's pacing, so Retry-After, backoff and server lag survive
// reloads and bind every tab. An event is deleted only after the server
// acknowledged it (or the storage cap evicted it).
import { evictionPlan, type Counts } from './drop-policy.ts'
import { idlePacing, type Pacing } from './scheduler.ts'
import type { Stream } from './types.ts'

export interface StoredEvent {
  seq: number
  json: string
  bytes: number
}

export interface NewEvent {
  stream: Stream
  json: string
  bytes: number
}

export interface Appended {
  seqs: number[]
  evicted: Counts
  /** Per queue, the highest seq evicted (0: none). */
  evictedUpTo: Counts
}

export interface Peeked {
  records: StoredEvent[]
  pacing: Pacing
  counts: Counts
}

const STREAMS: readonly Stream[] = ['progress', 'analytics']
const PACING = 'pacing'

const request = <T>(req: IDBRequest<T>): Promise<T> =>
  new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })

const completion = (tx: IDBTransaction): Promise<void> =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'))
  })

/** Within tx: evicts what the drop policy says once both queues are counted, noting it in result. */
function evictPastCap(tx: IDBTransaction, cap: number, result: Appended): void {
  const progress = tx.objectStore('progress').count()
  const analytics = tx.objectStore('analytics').count()
  // Requests complete in order, so both counts are known here.
  analytics.onsuccess = () => {
    const plan = evictionPlan({ progress: progress.result, analytics: analytics.result }, cap)
    for (const stream of STREAMS) {
      if (plan[stream] === 0) continue
      const store = tx.objectStore(stream)
      const keys = store.getAllKeys(null, plan[stream])
      keys.onsuccess = () => {
        const last = keys.result[keys.result.length - 1] as number
        result.evicted[stream] = keys.result.length
        result.evictedUpTo[stream] = last
        store.delete(IDBKeyRange.upperBound(last))
      }
    }
  }
}

/**
 * IndexedDB is missing or refuses to open (some private modes, storage
 * blocked by the user or for a third-party frame). Every call that needs the
 * store rejects with it: the SDK keeps no events in memory instead, since a
 * reload would lose them without a word.
 */
export class StorageUnavailableError extends Error {
  override name = 'StorageUnavailableError'
}

export class EventStore {
  readonly db: IDBDatabase
  readonly durability: IDBTransactionDurability

  constructor(db: IDBDatabase, durability: IDBTransactionDurability) {
    this.db = db
    this.durability = durability
  }

  static async open(name: string, durability: IDBTransactionDurability): Promise<EventStore> {
    let db: IDBDatabase
    // Missing (a reference or type error), throwing on access, or failing to open: all one case for the caller.
    try {
      const opening = indexedDB.open(name, 1)
      opening.onupgradeneeded = () => {
        for (const stream of STREAMS) opening.result.createObjectStore(stream, { keyPath: 'seq', autoIncrement: true })
        opening.result.createObjectStore(PACING)
      }
      db = await request(opening)
    } catch (cause) {
      throw new StorageUnavailableError('IndexedDB is unavailable, so events cannot be stored', { cause })
    }
    // A newer SDK version in another tab must be able to upgrade.
    db.onversionchange = () => db.close()
    return new EventStore(db, durability)
  }

  /**
   * Writes events (one transaction, committed before it resolves) and applies
   * the cap. hurry: the page is going away and will likely not live to run a
   * request's callback, which deciding on evictions needs, so the transaction
   * commits at once and the next append applies the cap (it evicts whatever
   * exceeds it). Without it a write made on pagehide almost never commits.
   */
  async append(events: readonly NewEvent[], cap: number, hurry = false): Promise<Appended> {
    const tx = this.db.transaction(STREAMS, 'readwrite', { durability: this.durability })
    const done = completion(tx)
    const result: Appended = { seqs: [], evicted: { progress: 0, analytics: 0 }, evictedUpTo: { progress: 0, analytics: 0 } }
    events.forEach((event, i) => {
      const added = tx.objectStore(event.stream).add({ json: event.json, bytes: event.bytes })
      added.onsuccess = () => (result.seqs[i] = added.result as number)
    })
    if (hurry) tx.commit?.() // older browsers commit on their own, a little later
    else evictPastCap(tx, cap, result)
    await done
    return result
  }

  /** The oldest events of a queue, its pacing and both queues' sizes, in one snapshot. */
  async peek(stream: Stream, limit: number): Promise<Peeked> {
    const tx = this.db.transaction([...STREAMS, PACING], 'readonly')
    const [records, pacing, progress, analytics] = await Promise.all([
      request(tx.objectStore(stream).getAll(null, limit)) as Promise<StoredEvent[]>,
      request(tx.objectStore(PACING).get(stream)) as Promise<Pacing | undefined>,
      request(tx.objectStore('progress').count()),
      request(tx.objectStore('analytics').count()),
    ])
    return { records, pacing: { ...idlePacing, ...pacing }, counts: { progress, analytics } }
  }

  async counts(): Promise<Counts> {
    const tx = this.db.transaction(STREAMS, 'readonly')
    const [progress, analytics] = await Promise.all(STREAMS.map((stream) => request(tx.objectStore(stream).count())))
    return { progress: progress!, analytics: analytics! }
  }

  /**
   * After a request: deletes the acknowledged events and updates the queue's
   * pacing in one transaction. `update` runs on the stored pacing, which
   * another tab may have changed. With shareGate, the new notBefore (a
   * Retry-After or backoff deadline) also holds the other queue back: the
   * server's rate limit is per user and an outage hits both routes.
   */
  async settle(stream: Stream, seqs: readonly number[], update: (pacing: Pacing) => Pacing, shareGate = false): Promise<Pacing> {
    const tx = this.db.transaction([stream, PACING], 'readwrite')
    const done = completion(tx)
    const events = tx.objectStore(stream)
    for (const seq of seqs) events.delete(seq)
    const pacingStore = tx.objectStore(PACING)
    let next = idlePacing
    const current = pacingStore.get(stream)
    current.onsuccess = () => {
      next = update({ ...idlePacing, ...current.result })
      pacingStore.put(next, stream)
    }
    if (shareGate) {
      const other: Stream = stream === 'progress' ? 'analytics' : 'progress'
      const stored = pacingStore.get(other)
      // Runs after current.onsuccess (requests complete in order), so next is known.
      stored.onsuccess = () => {
        const pacing: Pacing = { ...idlePacing, ...stored.result }
        if (next.notBefore > pacing.notBefore) pacingStore.put({ ...pacing, notBefore: next.notBefore }, other)
      }
    }
    await done
    return next
  }

  close(): void {
    this.db.close()
  }
}
