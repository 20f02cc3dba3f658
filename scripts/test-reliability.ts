// npm run test:reliability: the fault-injection suite (docs/reliability.md) at
// full scale. Runs through scripts/test.ts (real embedded PostgreSQL), one
// scenario file at a time so that their load and figures do not disturb each
// other, then repeats each scenario's figures line as a summary.
//
//   npm run test:reliability                                 # every scenario, full scale
//   npm run test:reliability -- test/reliability/crash.test.ts
//   RELIABILITY_SCALE=ci npm run test:reliability            # the quick versions `npm test` runs
//   RELIABILITY_SEED=123 ...                                 # replay one hostile-input run
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

const root = path.resolve(import.meta.dirname, '..')
const given = process.argv.slice(2)
const files =
  given.length > 0
    ? given
    : fs
        .readdirSync(path.join(root, 'test/reliability'))
        .filter((file) => file.endsWith('.test.ts'))
        .sort()
        .map((file) => `test/reliability/${file}`)
const scale = process.env.RELIABILITY_SCALE ?? 'full'

const figures: string[] = []
const exitCode = await new Promise<number>((resolve) => {
  const run = spawn(process.execPath, [path.join(root, 'scripts/test.ts'), '--jobs=1', '--timeout=900', ...files], {
    cwd: root,
    env: { ...process.env, RELIABILITY_SCALE: scale },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let buffer = ''
  run.stdout.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk)
    buffer += chunk.toString()
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    for (const line of lines) {
      const match = /# reliability figures (.*)$/.exec(line)
      if (match) figures.push(match[1]!)
    }
  })
  run.on('close', (code) => resolve(code ?? 1))
})

console.log(`\nreliability figures (${scale} scale):`)
for (const line of figures) console.log(`  ${line}`)
process.exit(exitCode)
