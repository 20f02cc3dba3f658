// How every command finds its database (contract section 1): DATABASE_URL when
// set; otherwise the embedded server in DATA_DIR, attaching to it when another
// process already runs it and starting it otherwise.
import type { Config } from '../config.ts'
import { openEmbedded } from './embedded.ts'

export interface DatabaseLocation {
  url: string
  /** At exit: the embedded server stops with the last process that uses it (a no-op with DATABASE_URL). */
  release(): Promise<void>
  embedded: boolean
}

/**
 * Stops a process that cannot start: one line on stderr saying why, `close`
 * for what the process opened, the embedded server released (stopped if no
 * other process uses it), exit code 1. Not a stack trace.
 */
export async function exitAtStart(database: DatabaseLocation, line: string, close: () => Promise<unknown>): Promise<never> {
  process.stderr.write(`${line}\n`)
  await close().catch(() => {})
  await database.release()
  process.exit(1)
}

// postgres.js asks for TLS after the server has answered "no" to it (libpq
// would stop there), so a server without TLS fails the handshake: PostgreSQL
// closes the socket, a pooler answers in plain text. Node's words for either
// name OpenSSL internals, not the setting to change.
const NO_TLS =
  'the server does not accept TLS connections, but DATABASE_URL asks for them: remove sslmode from DATABASE_URL (or set sslmode=disable), or enable ssl on the server'

function tlsRefused(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: string; message?: string }
  return code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /before secure TLS connection was established/.test(message ?? '')
}

// Node's codes for a certificate it could not verify (an unknown root, a name
// that does not match, an expired one): TLS worked, trust did not.
function certificateRefused(error: unknown): boolean {
  const { code } = (error ?? {}) as { code?: string }
  return typeof code === 'string' && /CERT|ERR_TLS/.test(code)
}

const UNTRUSTED =
  "the server's certificate is not trusted (%s): name its root certificate in DATABASE_URL with sslrootcert=<file>, or use sslmode=require to encrypt without verifying"

/** An error's message in one line: OpenSSL's end in a newline, which would print a blank one. */
function firstLine(error: unknown): string {
  return String((error as Error | undefined)?.message ?? error).trim().split('\n')[0]!
}

/** The line a process stops with when its database fails it at start (see exitAtStart). */
export function cannotUseDatabase(database: DatabaseLocation, error: unknown): string {
  const reason = tlsRefused(error) ? NO_TLS : certificateRefused(error) ? UNTRUSTED.replace('%s', firstLine(error)) : firstLine(error)
  return `cannot use the database${database.embedded ? '' : ' at DATABASE_URL'}: ${reason}`
}

// Socket failures and postgres.js's codes for a connection that failed or was lost.
const CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED'])

/**
 * The line for a start that failed after the schema check (`what`: "the
 * API", "the worker"): the database refusing, said as that check says it
 * (PostgreSQL's errors, through postgres.js or pg, carry its severity), or
 * anything else as what it is.
 */
export function startFailure(database: DatabaseLocation, error: unknown, what: string): string {
  const { severity, code, syscall } = (error ?? {}) as { severity?: unknown; code?: string; syscall?: string }
  const fromDatabase = typeof severity === 'string' || CONNECTION_CODES.has(code ?? '') || syscall === 'connect' || tlsRefused(error) || certificateRefused(error)
  return fromDatabase ? cannotUseDatabase(database, error) : `cannot start ${what}: ${firstLine(error)}`
}

export async function locateDatabase(
  config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR'>,
  log: (line: string) => void = () => {},
): Promise<DatabaseLocation> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, release: async () => {}, embedded: false }
  const server = await openEmbedded(config.DATA_DIR, log)
  return { url: server.url, release: server.release, embedded: true }
}
