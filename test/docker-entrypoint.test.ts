// The image's entrypoint (scripts/docker-entrypoint.sh): started as root, it
// gives a root-owned DATA_DIR (a new volume) and its snapshot directory to the
// run-as user and runs the command as that user; started as anyone else, it
// runs the command unchanged. Run here as `nobody`, as the image would as node.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'

const entrypoint = path.resolve(import.meta.dirname, '../scripts/docker-entrypoint.sh')
const uidOf = (user: string) => Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim())

t.test('as root: a root-owned volume is given to the run-as user, and the command runs as that user', { skip: process.getuid?.() !== 0 && 'needs root, as a container starts' }, async (t) => {
  const volume = fs.mkdtempSync(path.join(os.tmpdir(), 'volume-'))
  t.teardown(() => fs.rmSync(volume, { recursive: true, force: true }))
  fs.chmodSync(volume, 0o755) // as a new volume: root's, writable by root only
  const run = spawnSync(entrypoint, ['sh', '-c', 'id -un && touch "$SNAPSHOT_DIR/written"'], {
    env: { PATH: process.env.PATH, DATA_DIR: volume, SNAPSHOT_DIR: path.join(volume, 'snapshots'), RUN_AS: 'nobody' },
    encoding: 'utf8',
  })
  t.equal(run.status, 0, run.stderr)
  t.equal(run.stdout.trim(), 'nobody', 'the command runs as the run-as user')
  t.equal(fs.statSync(volume).uid, uidOf('nobody'), 'DATA_DIR is theirs')
  t.equal(fs.statSync(path.join(volume, 'snapshots', 'written')).uid, uidOf('nobody'), 'and retention can write its snapshots')
})

t.test('as another user the command runs unchanged', async (t) => {
  // A copy another user can reach, wherever this checkout lives.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'entrypoint-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.chmodSync(dir, 0o755)
  const script = path.join(dir, 'docker-entrypoint.sh')
  fs.copyFileSync(entrypoint, script)
  fs.chmodSync(script, 0o755)
  const asOther = process.getuid?.() === 0 ? { uid: uidOf('nobody'), gid: Number(spawnSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).stdout.trim()) } : {}
  const run = spawnSync(script, ['sh', '-c', 'echo "$1"', 'sh', 'passed on'], { env: { PATH: process.env.PATH, DATA_DIR: '/nonexistent' }, encoding: 'utf8', ...asOther })
  t.equal(run.status, 0, run.stderr)
  t.equal(run.stdout, 'passed on\n', 'arguments reach the command as they were')
})
