// Stopping on SIGINT or SIGTERM. One Ctrl-C can arrive more than once: a
// terminal signals the whole process group, and npm and scripts/node-ts.mjs
// also pass the signal on to their child. Copies within COPY_WINDOW_MS of the first
// are that same request; a signal after that is someone asking again.
const COPY_WINDOW_MS = 500

/** Classifies each signal a process receives: the first, a copy of it, or a new one. */
export function signalRepeats(): () => 'first' | 'copy' | 'again' {
  let firstAt: number | undefined
  return () => {
    const now = performance.now()
    if (firstAt === undefined) {
      firstAt = now
      return 'first'
    }
    return now - firstAt < COPY_WINDOW_MS ? 'copy' : 'again'
  }
}

// Runs `stop` once on SIGINT or SIGTERM, then exits; asked again, exits at once.
export function onShutdownSignal(stop: (signal: string) => Promise<void>): void {
  const repeat = signalRepeats()
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      const seen = repeat()
      if (seen === 'again') process.exit(130)
      if (seen === 'copy') return
      stop(signal).then(
        () => process.exit(0),
        (error: unknown) => {
          console.error(`shutdown failed: ${(error as Error).message}`)
          process.exit(1)
        },
      )
    })
  }
}
