// The baseline drivers' load loop: N callers, each sending its next batch as
// soon as the previous one is answered, for a fixed time after a warm-up.
// Reports the rate it sustained and the latency of each call.
export interface LoopOptions {
  callers: number
  seconds: number
  warmupSeconds: number
  /** Sends the iteration-th batch; resolves with how many events it carried. */
  send(iteration: number): Promise<number>
}

export interface LoopResult {
  callers: number
  seconds: number
  batches: number
  /** Batches sent including the warm-up: what a CPU reading over the driver's whole run divides by. */
  allBatches: number
  events: number
  errors: number
  batchesPerSecond: number
  eventsPerSecond: number
  latencyMs: { p50: number; p95: number; p99: number; max: number }
  firstError?: string
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const round2 = (value: number) => Math.round(value * 100) / 100

export async function closedLoop(options: LoopOptions): Promise<LoopResult> {
  let iteration = 0
  const phase = async (seconds: number) => {
    const latencies: number[] = []
    let events = 0
    let errors = 0
    let firstError: string | undefined
    const started = performance.now()
    const deadline = started + seconds * 1000
    const caller = async () => {
      while (performance.now() < deadline) {
        const begun = performance.now()
        try {
          const sent = await options.send(iteration++) // not `events += await`: callers interleave
          events += sent
          latencies.push(performance.now() - begun)
        } catch (error) {
          errors++
          firstError ??= (error as Error).message
        }
      }
    }
    await Promise.all(Array.from({ length: options.callers }, caller))
    return { latencies, events, errors, firstError, elapsed: (performance.now() - started) / 1000 }
  }
  if (options.warmupSeconds > 0) await phase(options.warmupSeconds)
  const { latencies, events, errors, firstError, elapsed } = await phase(options.seconds)
  latencies.sort((a, b) => a - b)
  return {
    callers: options.callers,
    seconds: round2(elapsed),
    batches: latencies.length,
    allBatches: iteration,
    events,
    errors,
    batchesPerSecond: round2(latencies.length / elapsed),
    eventsPerSecond: round2(events / elapsed),
    latencyMs: {
      p50: round2(percentile(latencies, 50)),
      p95: round2(percentile(latencies, 95)),
      p99: round2(percentile(latencies, 99)),
      max: round2(latencies.at(-1) ?? 0),
    },
    ...(firstError ? { firstError } : {}),
  }
}

/** The drivers' shared command line: --url --callers --seconds --warmup --learners --courses --events. */
export function driverArgs(argv: string[]) {
  const named = new Map<string, string>()
  for (let k = 0; k < argv.length; k++) {
    const match = /^--([\w-]+)(?:=(.*))?$/.exec(argv[k]!)
    if (match) named.set(match[1]!, match[2] ?? argv[++k] ?? '')
  }
  const int = (name: string, fallback: number) => {
    const value = Number(named.get(name) ?? fallback)
    if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`)
    return value
  }
  const url = named.get('url') ?? process.env.DATABASE_URL
  if (!url) throw new Error('--url (or DATABASE_URL) is required')
  return {
    url,
    callers: int('callers', 4),
    seconds: int('seconds', 10),
    warmupSeconds: int('warmup', 3),
    learners: int('learners', 5000),
    courses: int('courses', 4),
    eventsPerBatch: int('events', 10),
  }
}
