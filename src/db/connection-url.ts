// DATABASE_URL's client-side parameters (libpq's TLS ones), read once, with
// libpq's meaning, for both drivers: postgres.js (every pool) and node-postgres
// (under pg-boss). Left to themselves the two disagree: `sslmode=require` is
// "encrypt, do not verify" to libpq and postgres.js but "verify the
// certificate" to node-postgres, so against a provider whose CA Node does not
// ship (Supabase, RDS) the API answered while the worker could not start; and
// postgres.js ignores `sslrootcert` and sends any parameter it does not know
// to the server as a setting, which refuses it ("unrecognized configuration
// parameter"). Each driver gets the URL without these parameters, and the
// same TLS options.
import fs from 'node:fs'
import tls from 'node:tls'

export interface ConnectionUrl {
  /** The URL without the parameters read here. */
  url: string
  /** postgres.js's `ssl`: off, TLS when the server offers it ('prefer'), or always with these options. */
  ssl: false | 'prefer' | tls.ConnectionOptions
  /** node-postgres's `ssl`, which cannot fall back to plain text: 'prefer' asks for TLS without verifying. */
  pgSsl: false | tls.ConnectionOptions
}

/** Parameters only a client reads; none of them may reach the server. */
const CLIENT_PARAMETERS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'channel_binding', 'uselibpqcompat']
const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']

/** Throws an Error whose message suits "DATABASE_URL <message>" (it never repeats the URL, which may hold a password). */
export function readConnectionUrl(url: string): ConnectionUrl {
  const queryAt = url.indexOf('?')
  if (queryAt < 0) return { url, ssl: false, pgSsl: false }
  const query = new URLSearchParams(url.slice(queryAt + 1))
  const get = (name: string) => query.get(name) ?? undefined
  const rootCert = get('sslrootcert')
  const mode = get('sslmode') ?? (rootCert ? 'verify-full' : undefined)
  if (mode !== undefined && !SSL_MODES.includes(mode)) throw new Error(`has sslmode=${mode}: use one of ${SSL_MODES.join(', ')}`)
  if (get('channel_binding') === 'require') {
    // Neither driver does channel binding; dropping the demand silently would
    // give up the protection against a man in the middle that it asks for.
    throw new Error('asks for channel_binding=require, which this service cannot do: remove it and use sslmode=verify-full, which authenticates the server by its certificate')
  }
  for (const name of CLIENT_PARAMETERS) query.delete(name)
  const rest = query.toString()
  const stripped = url.slice(0, queryAt) + (rest ? `?${rest}` : '')

  if (mode === undefined || mode === 'disable') return { url: stripped, ssl: false, pgSsl: false }
  const files: tls.ConnectionOptions = {
    ...(rootCert === undefined ? {} : { ca: rootCert === 'system' ? systemCertificates() : readFile('sslrootcert', rootCert) }),
    ...(get('sslcert') === undefined ? {} : { cert: readFile('sslcert', get('sslcert')!) }),
    ...(get('sslkey') === undefined ? {} : { key: readFile('sslkey', get('sslkey')!) }),
  }
  // libpq: require with a root certificate verifies the chain, as verify-ca does.
  const verifyChain = mode === 'verify-ca' || mode === 'verify-full' || (mode === 'require' && rootCert !== undefined)
  const options: tls.ConnectionOptions = verifyChain
    ? { ...files, ...(mode === 'verify-full' ? identityOf(stripped) : { checkServerIdentity: () => undefined }) }
    : { ...files, rejectUnauthorized: false }
  return { url: stripped, ssl: mode === 'allow' || mode === 'prefer' ? 'prefer' : options, pgSsl: options }
}

/**
 * verify-full checks the certificate against the host the URL names, as libpq
 * does. postgres.js sends no server name for an IP address, and Node then
 * checks the certificate against "localhost" instead.
 */
function identityOf(url: string): tls.ConnectionOptions {
  const authority = url.slice(url.indexOf('://') + 3).split(/[/?]/)[0]!
  if (authority.slice(authority.lastIndexOf('@') + 1).includes(',')) return {} // several hosts: the drivers' own check
  const host = decodeURIComponent(new URL(url).hostname.replace(/^\[(.*)\]$/, '$1'))
  return { checkServerIdentity: (_name, certificate) => tls.checkServerIdentity(host, certificate) }
}

/** The operating system's trusted roots (libpq's `sslrootcert=system`); Node's own before Node 22.15. */
function systemCertificates(): string[] {
  return tls.getCACertificates?.('system') ?? [...tls.rootCertificates]
}

function readFile(parameter: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch (error) {
    throw new Error(`names ${parameter}=${file}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`)
  }
}
