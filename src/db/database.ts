// How every command finds its database (contract section 1): DATABASE_URL when
// set; otherwise the embedded server in DATA_DIR, attaching to it when another
// process already runs it and starting it otherwise.
import type { Config } from '../config.ts'
import { openEmbedded } from './embedded.ts'

export interface DatabaseLocation {
  url: string
  /** Stops the embedded server if this process started it; otherwise a no-op. */
  release(): Promise<void>
  embedded: boolean
}

/**
 * Stops a process that cannot start: one line on stderr saying why, `close`
 * for what the process opened, the embedded server released if this process
 * started it (it must not outlive it), exit code 1. Not a stack trace.
 */
export async function exitAtStart(database: DatabaseLocation, line: string, close: () => Promise<unknown>): Promise<never> {
  process.stderr.write(`${line}\n`)
  await close().catch(() => {})
  await database.release()
  process.exit(1)
}

export async function locateDatabase(
  config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR'>,
  log: (line: string) => void = () => {},
): Promise<DatabaseLocation> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, release: async () => {}, embedded: false }
  const server = await openEmbedded(config.DATA_DIR, log)
  return { url: server.url, release: server.stop, embedded: true }
}
