// scripts/node-ts.mjs, through which every npm script runs its TypeScript
// entry point. Node 22.12 to 22.17 strip types only when asked; Node run with
// --no-experimental-strip-types stands in for them here.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'

const root = path.resolve(import.meta.dirname, '..')
const launcher = path.join(root, 'scripts', 'node-ts.mjs')
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ts-'))
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))

// Reports how it was run, then exits with the code it was given.
const report = path.join(dir, 'report.ts')
fs.writeFileSync(
  report,
  `const code: number = Number(process.argv[3] ?? 0)
console.log(JSON.stringify({ typescript: process.features.typescript, argv1: process.argv[1], args: process.argv.slice(2), nodeOptions: process.env.NODE_OPTIONS ?? '', isMain: import.meta.filename === process.argv[1] }))
process.exitCode = code
`,
)

function run(nodeFlags: string[], args: string[]) {
  const result = spawnSync(process.execPath, [...nodeFlags, launcher, report, ...args], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=300' } })
  return { status: result.status, stderr: result.stderr, report: JSON.parse(result.stdout.trim() || '{}') }
}

const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
const stripsByDefault = major > 22 || minor >= 18

t.test('a Node that strips types: the entry runs in this process, as if given to node itself', { skip: !stripsByDefault && 'this Node strips types only when asked' }, async (t) => {
  const { status, report: seen, stderr } = run([], ['--flag', '0'])
  t.equal(status, 0)
  t.equal(seen.typescript, 'strip')
  t.equal(seen.argv1, report, 'process.argv[1] is the entry')
  t.same(seen.args, ['--flag', '0'], 'the arguments follow it')
  t.ok(seen.isMain, 'so the entry knows it is the main module')
  // (tap adds its own loaders to every child's NODE_OPTIONS, so only ours are checked)
  t.match(seen.nodeOptions, /--max-old-space-size=300/, "the user's NODE_OPTIONS kept")
  t.notMatch(seen.nodeOptions, /strip-types|disable-warning/, 'and nothing added')
  t.equal(stderr, '')
})

t.test('a Node that strips types only when asked: a child with the flag in NODE_OPTIONS, quietly', async (t) => {
  const { status, report: seen, stderr } = run(['--no-experimental-strip-types'], ['--flag', '3'])
  t.equal(status, 3, "the child's exit code is the launcher's")
  t.equal(seen.typescript, 'strip')
  t.same(seen.args, ['--flag', '3'])
  t.ok(seen.isMain)
  t.match(seen.nodeOptions, /--max-old-space-size=300/, "the user's NODE_OPTIONS kept")
  t.match(seen.nodeOptions, /--experimental-strip-types\b/, 'the flag added, for every process it starts too')
  t.match(seen.nodeOptions, /--disable-warning=ExperimentalWarning\b/)
  t.equal(stderr, '', 'no experimental-feature warning in front of the output')
})

t.test('a signal sent to the launcher reaches the child', async (t) => {
  const waits = path.join(dir, 'waits.ts')
  fs.writeFileSync(waits, `process.on('SIGTERM', () => { console.log('stopping'); process.exit(0) })\nconsole.log('ready')\nsetInterval(() => {}, 1000)\n`)
  const child = spawn(process.execPath, ['--no-experimental-strip-types', launcher, waits], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  // Two Node start-ups (the launcher, then its child): up to 30 s on a loaded machine.
  for (let i = 0; i < 600 && !output.includes('ready'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(output, 'ready\n', 'the child started')
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  t.equal(await exited, 0)
  t.equal(output, 'ready\nstopping\n')
})

t.test('an older Node is told what it needs, in one line', async (t) => {
  // Node refuses to start at all with an unknown flag, so the check is run on a version string instead.
  const check = spawnSync(process.execPath, ['-e', `Object.defineProperty(process.versions, 'node', { value: '20.20.2' }); Object.defineProperty(process, 'version', { value: 'v20.20.2' }); process.argv = [process.argv[0], ${JSON.stringify(launcher)}, ${JSON.stringify(report)}]; import(${JSON.stringify(`file://${launcher}`)})`], { encoding: 'utf8' })
  t.equal(check.status, 1)
  t.equal(check.stderr, 'Node.js >= 22.12 is needed (this is v20.20.2): https://nodejs.org\n')
  t.equal(check.stdout, '')
})
