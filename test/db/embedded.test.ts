// The zero-setup database: data persists across restarts, a second process
// attaches instead of starting another server, the server outlives its owner
// while others use it, two starts at once make one server, and a killed
// server's lock is recovered.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { openEmbedded } from '../../src/db/embedded.ts'
import { createPool } from '../../src/db/pool.ts'

async function query<T>(url: string, text: string): Promise<T[]> {
  const sql = createPool(url, { max: 1 })
  try {
    return (await sql.unsafe(text)) as unknown as T[]
  } finally {
    await sql.end()
  }
}

t.test('embedded PostgreSQL keeps data across restarts and is shared by a second process', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'embedded-'))
  fs.chmodSync(dataDir, 0o711)
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))

  const first = await openEmbedded(dataDir)
  t.equal(first.owned, true, 'the first process starts the server')
  await query(first.url, `create table kept (v text); insert into kept values ('still here')`)

  const second = await openEmbedded(dataDir)
  t.equal(second.owned, false, 'a second process attaches to the running server')
  t.equal(second.url, first.url)
  await second.stop() // a no-op for an attached process
  t.same(await query<{ v: string }>(first.url, 'select v from kept'), [{ v: 'still here' }], 'still running after the attacher stops')

  await first.stop()
  const restarted = await openEmbedded(dataDir)
  t.teardown(() => restarted.stop())
  t.equal(restarted.owned, true)
  t.same(await query<{ v: string }>(restarted.url, 'select v from kept'), [{ v: 'still here' }], 'data persisted in DATA_DIR/pg')
  t.equal(new URL(restarted.url).port, new URL(first.url).port, 'restarted on the same port')
  const mode = fs.statSync(path.join(dataDir, 'dev-secrets.json')).mode & 0o777
  t.equal(mode, 0o600, 'the dev secrets file is private')
})

t.test('a server killed with SIGKILL leaves a stale lock that the next start recovers', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'embedded-'))
  fs.chmodSync(dataDir, 0o711)
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const server = await openEmbedded(dataDir)
  await query(server.url, 'create table kept (v int); insert into kept values (42)')
  const pid = Number(fs.readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0])
  process.kill(pid, 'SIGKILL')
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0)
      await new Promise((resolve) => setTimeout(resolve, 100))
    } catch {
      break
    }
  }
  t.ok(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'the killed server left its lock file')
  const lines: string[] = []
  const recovered = await openEmbedded(dataDir, (line) => lines.push(line))
  t.teardown(() => recovered.stop())
  t.equal(recovered.owned, true)
  t.match(lines.join('\n'), /stale lock/, 'says in one line what it did')
  t.same(await query<{ v: number }>(recovered.url, 'select v from kept'), [{ v: 42 }], 'committed data survived the crash')
})

t.test('a command that started the server leaves it running for the others; the last one to leave stops it', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'embedded-'))
  fs.chmodSync(dataDir, 0o711)
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const lines: string[] = []
  const owner = await openEmbedded(dataDir, (line) => lines.push(line))
  const other = await openEmbedded(dataDir, (line) => lines.push(line)) // the API that attached while seed:demo ran
  t.teardown(() => owner.stop())
  t.equal(other.owned, false)
  const client = createPool(other.url, { max: 1 })
  await client`select 1`

  await owner.release()
  t.equal(lines.at(-1), 'embedded PostgreSQL: left running for 1 other process; the last to leave stops it')
  t.same(await client`select 1 as still`, [{ still: 1 }], 'the other process keeps its database')
  await client.end()

  await other.release()
  t.equal(lines.at(-1), 'embedded PostgreSQL: stopped', 'the last to leave stops it')
  t.notOk(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')))

  const again = await openEmbedded(dataDir)
  const attacher = await openEmbedded(dataDir)
  await attacher.release()
  t.same(await query<{ up: number }>(again.url, 'select 1 as up'), [{ up: 1 }], 'an attached process leaving never stops it under its owner')
  await again.release()
  t.notOk(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'with nobody else registered, its owner stops it')

  // A process killed while attached leaves a registration: it does not keep the server up for good.
  const third = await openEmbedded(dataDir)
  const exited = spawnSync('true').pid // a pid whose process has ended
  fs.writeFileSync(path.join(dataDir, 'pg.users', `${exited}-1`), '')
  await third.release()
  t.notOk(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), "a dead process's registration does not count")
})

t.test('a server an older release started (no registrations) is left to it: an upgraded command attaching to it never stops it', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'embedded-'))
  fs.chmodSync(dataDir, 0o711)
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const older = await openEmbedded(dataDir)
  t.teardown(() => older.stop())
  fs.rmSync(path.join(dataDir, 'pg.users'), { recursive: true }) // releases before b9e7c20 registered nothing
  for (let run = 1; run <= 2; run++) {
    const command = await openEmbedded(dataDir) // npm run migrate, partitions, … of the new release
    t.equal(command.owned, false)
    await command.release()
    t.same(await query<{ up: number }>(older.url, 'select 1 as up'), [{ up: 1 }], `the older stack's database still runs after attacher ${run} left`)
  }
  await older.stop()
  t.notOk(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'its starter stops it')
  const next = await openEmbedded(dataDir)
  t.equal(next.owned, true)
  await next.release()
  t.notOk(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'and a server the new release starts is stopped by the last to leave, as before')
})

t.test('two openings of a new data directory at once make one server (the claim file between them)', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'embedded-'))
  fs.chmodSync(dataDir, 0o711)
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const both = await Promise.all([openEmbedded(dataDir), openEmbedded(dataDir)])
  t.teardown(() => Promise.all(both.map((server) => server.stop())))
  t.same(both.map((server) => server.owned).sort(), [false, true], 'one starts it, the other waits and attaches')
  t.equal(both[0].url, both[1].url)
  t.same(await query<{ up: number }>(both[0].url, 'select 1 as up'), [{ up: 1 }])
  t.notOk(fs.existsSync(path.join(dataDir, 'pg.claim')), 'the claim is released')
})
