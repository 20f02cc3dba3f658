// The npm scripts' options: a wrong one gets the usage and exit code 2, never
// a stack trace; --help gets the usage and exit code 0. Options are read before
// anything connects, so no database is needed here.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'

const root = path.resolve(import.meta.dirname, '..')
const scripts = ['bench', 'build-sdk', 'migrate', 'partitions', 'replay-dead-letter', 'restore-snapshot', 'retention-events', 'rollup', 'seed-demo', 'token']

const run = (script: string, args: string[]) =>
  spawnSync(process.execPath, [path.join(root, 'scripts', `${script}.ts`), ...args], { cwd: root, encoding: 'utf8', timeout: 30_000 })

for (const script of scripts) {
  t.test(script, async (t) => {
    const unknown = run(script, ['--no-such-option'])
    t.equal(unknown.status, 2, 'an unknown option exits 2')
    t.match(unknown.stderr, /^Unknown option '--no-such-option'/)
    t.match(unknown.stderr, /\nusage: npm run /, 'and prints the usage')
    t.notMatch(unknown.stderr, /\n\s+at /, 'without a stack trace')

    const help = run(script, ['--help'])
    t.equal(help.status, 0, '--help exits 0')
    t.match(help.stdout, /^usage: npm run /)
    t.equal(help.stderr, '')
  })
}

t.test('seed:demo counts are plain digits', async (t) => {
  for (const value of ['1e1', ' 3', '2.0', '0', '-4']) {
    const bad = run('seed-demo', ['--learners', value])
    t.equal(bad.status, 2, JSON.stringify(value))
    t.match(bad.stderr, /usage: npm run seed:demo/)
  }
})

t.test('an option missing its value names it', async (t) => {
  const missing = run('seed-demo', ['--learners'])
  t.equal(missing.status, 2)
  t.match(missing.stderr, /--learners <value>' argument missing\nusage: npm run seed:demo/)
})

t.test('the token script mints only tokens the API accepts, and says why not', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'token-'))
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const env = { ...process.env, DATA_DIR: dataDir, AUTH_JWT_SECRET: 'x'.repeat(32) }
  const token = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'scripts', 'token.ts'), ...args], { cwd: root, env, encoding: 'utf8', timeout: 30_000 })
  const refusals: [string[], RegExp][] = [
    [['--user', 'u', '--ttl', 'abc'], /^--ttl abc is not a time span ahead such as 30m, 1h, 7d or 3600 \(seconds\)\nusage: npm run token/],
    [['--user', 'u', '--ttl=-1h'], /^--ttl -1h is not a time span ahead/],
    [['--user', 'u', '--ttl', '0s'], /^--ttl 0s is not a time span ahead/],
    [['--user', 'u', '--role', 'service'], /^the API would refuse this token: a service token needs an org_id claim \(give --org\)\nusage/],
    [['--user', 'u', '--role', 'admin'], /^the API would refuse this token: an admin token needs an org_id claim/],
    [['--user', 'u'.repeat(129)], /^the API would refuse this token: token has no usable sub claim/],
  ]
  for (const [args, message] of refusals) {
    const bad = token(...args)
    t.equal(bad.status, 2, args.join(' '))
    t.match(bad.stderr, message, args.join(' '))
    t.notMatch(bad.stderr, /\n\s+at /, 'without a stack trace')
    t.equal(bad.stdout, '', 'and no token')
  }
  for (const args of [['--user', 'u', '--ttl', '30m'], ['--user', 'u', '--ttl', '3600'], ['--user', 'u', '--role', 'service', '--org', 'demo']]) {
    const good = token(...args)
    t.equal(good.status, 0, good.stderr)
    t.match(good.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, `a token: ${args.join(' ')}`)
  }
  const [, payload] = token('--user', 'u', '--ttl', '3600').stdout.trim().split('.')
  const { iat, exp } = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as { iat: number; exp: number }
  t.equal(exp - iat, 3600, 'plain digits are seconds')
})
