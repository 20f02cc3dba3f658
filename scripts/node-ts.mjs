// Runs a TypeScript entry point: every npm script goes through here
// (`node scripts/node-ts.mjs src/main.ts [args]`), so that they work on every
// Node.js the project supports (>= 22.12).
//
// Node >= 22.18 (and 23.6+) strips types by default: the entry is imported in
// this process, with process.argv as if Node had been given the file itself.
// Node 22.12 to 22.17 strip types only with --experimental-strip-types: then
// the entry runs in a child with the flag added to NODE_OPTIONS, so that every
// process it starts in turn (the worker, the API, test files) has it too, and
// with experimental warnings off, so that each process does not print two lines
// about the feature before its own (one-line errors stay one line). The flags
// are never passed where they are not needed, since later Node releases may
// retire them.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [entry, ...args] = process.argv.slice(2)
if (!entry) {
  console.error('usage: node scripts/node-ts.mjs FILE.ts [ARGS...]')
  process.exit(2)
}
const file = path.resolve(entry)
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 12)) {
  console.error(`Node.js >= 22.12 is needed (this is ${process.version}): https://nodejs.org`)
  process.exit(1)
}

if (process.features.typescript) {
  process.argv = [process.argv[0], file, ...args]
  await import(pathToFileURL(file).href)
} else {
  const nodeOptions = [process.env.NODE_OPTIONS, '--experimental-strip-types', '--disable-warning=ExperimentalWarning'].filter(Boolean).join(' ')
  const child = spawn(process.execPath, [file, ...args], { stdio: 'inherit', env: { ...process.env, NODE_OPTIONS: nodeOptions } })
  // As npm does for its scripts: a signal sent to this process is passed on,
  // and this process ends when the child has, the way the child did.
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal)
      process.kill(process.pid, signal)
    } else process.exit(code ?? 1)
  })
}
