// Cross-tab mutual exclusion: one tab of the origin sends a queue at a time,
// so two tabs never send the same stored event. Web Locks are released by the
// browser when a tab closes or crashes, so a dead tab never blocks the others.

/**
 * Runs task while holding the named lock. wait=false gives up at once when
 * another tab holds it (and returns false). Without Web Locks (insecure
 * contexts, very old browsers) the task runs unguarded: a single tab stays
 * exact, several tabs may then send an event twice (the server counts it once).
 */
export async function withLock(name: string, wait: boolean, task: () => Promise<void>): Promise<boolean> {
  const locks = typeof navigator === 'undefined' ? undefined : navigator.locks
  if (!locks) {
    await task()
    return true
  }
  let ran = false
  await locks.request(name, { ifAvailable: !wait }, async (lock) => {
    if (!lock) return
    ran = true
    await task()
  })
  return ran
}
