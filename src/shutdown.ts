// Runs `stop` once on SIGINT or SIGTERM, then exits; a second signal exits at once.
export function onShutdownSignal(stop: (signal: string) => Promise<void>): void {
  let stopping = false
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(130)
      stopping = true
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
