// Session advisory locks for jobs that must not overlap themselves, whichever
// process (worker or one-shot script) runs them. Held on a reserved
// connection, so a process that dies releases its lock with its connection.
import type { Sql } from '../db/pool.ts'

/** Namespace of this service's job locks (the first key of the two-key form). */
const JOB_LOCK_SPACE = 19526

export const JobLocks = { rollup: 1, retention: 2 } as const

const RETRY_MS = 1000

/**
 * Runs `work` holding the lock. When another session holds it: returns
 * undefined at once, or with `waitMs`, retries until then (or until `signal`).
 */
export async function withJobLock<T>(
  sql: Sql,
  lock: number,
  work: () => Promise<T>,
  options: { waitMs?: number; signal?: AbortSignal } = {},
): Promise<T | undefined> {
  const session = await sql.reserve()
  try {
    const deadline = Date.now() + (options.waitMs ?? 0)
    for (;;) {
      const [row] = await session<{ locked: boolean }[]>`select pg_try_advisory_lock(${JOB_LOCK_SPACE}, ${lock}) as locked`
      if (row?.locked) break
      if (Date.now() >= deadline || options.signal?.aborted) return undefined
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
    }
    try {
      return await work()
    } finally {
      await session`select pg_advisory_unlock(${JOB_LOCK_SPACE}, ${lock})`.catch(() => {})
    }
  } finally {
    session.release()
  }
}
