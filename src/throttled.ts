// For a failure that repeats for as long as an outage lasts (the identity
// provider, or the database under the job queue's pollers): the first
// occurrence is reported at once, then at most one per interval with how many
// happened since the last report, so that an outage is a line a minute in
// the log rather than several a second.

/** Wraps `report`: call the result on every occurrence. */
export function throttled<T>(report: (value: T, occurrences: number) => void, intervalMs = 60_000): (value: T) => void {
  let lastAt = -Infinity
  let occurrences = 0
  return (value) => {
    occurrences++
    const now = Date.now()
    if (now - lastAt < intervalMs) return
    report(value, occurrences)
    lastAt = now
    occurrences = 0
  }
}
