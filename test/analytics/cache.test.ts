// The read path's cache: bounded (least recently used go first), entries
// expire after the TTL, hits and misses counted.
import t from 'tap'
import { LruTtlCache } from '../../src/analytics/cache.ts'

t.test('bounded, least recently used first, with a TTL', async (t) => {
  let now = 0
  const cache = new LruTtlCache<number>({ maxEntries: 2, ttlMs: 1000, now: () => now })
  cache.set('a', 1)
  cache.set('b', 2)
  t.equal(cache.get('a'), 1, 'a is now the most recently used')
  cache.set('c', 3)
  t.equal(cache.size, 2)
  t.equal(cache.get('b'), undefined, 'b was the least recently used: evicted')
  t.equal(cache.get('c'), 3)
  now = 1000
  t.equal(cache.get('a'), undefined, 'expired at the TTL')
  t.equal(cache.size, 1)
  cache.delete('c')
  t.equal(cache.get('c'), undefined)
  t.strictSame(cache.stats, { hits: 2, misses: 3, evictions: 1, invalidations: 1 })
  t.equal(cache.hitRate(), 0.4)
  cache.set('d', 4)
  cache.clear()
  t.equal(cache.size, 0)
  t.equal(new LruTtlCache({ maxEntries: 1, ttlMs: 1 }).hitRate(), 0, 'no lookups yet')
})
