// Progress for long-running scripts (house style rule 10): a bar on a
// terminal; when piped, nothing until the one-line summary the script prints.
import cliProgress from 'cli-progress'

export interface Progress {
  update(done: number, total: number): void
  stop(): void
}

export function progressBar(label: string, stream: NodeJS.WriteStream = process.stdout): Progress {
  if (!stream.isTTY) return { update() {}, stop() {} }
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} {percentage}% {duration_formatted}`, stream, clearOnComplete: true, hideCursor: true },
    cliProgress.Presets.shades_classic,
  )
  let started = false
  return {
    update(done, total) {
      if (!started) {
        bar.start(total, done)
        started = true
      } else {
        bar.setTotal(total)
        bar.update(done)
      }
    },
    stop() {
      if (started) bar.stop()
    },
  }
}
