// The storage cap's drop policy. Pure. When the device holds more than the
// cap, the oldest analytics events go first; progress events (a learner's
// record) are dropped, oldest first, only when no analytics are left.
import type { Stream } from './types.ts'

export type Counts = Record<Stream, number>

export function evictionPlan(counts: Counts, cap: number): Counts {
  let excess = Math.max(0, counts.progress + counts.analytics - cap)
  const analytics = Math.min(excess, counts.analytics)
  excess -= analytics
  return { analytics, progress: Math.min(excess, counts.progress) }
}
