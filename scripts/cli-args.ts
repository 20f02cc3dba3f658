// Options of the npm scripts: node:util's parseArgs, except that an unknown
// or malformed option prints the script's usage and exits 2 rather than a
// stack trace, and --help (or -h) prints the usage and exits 0.
import { parseArgs, type ParseArgsConfig } from 'node:util'

export function parseCliArgs<T extends ParseArgsConfig>(usage: string, config: T): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? process.argv.slice(2)
  if (args.includes('--help') || args.includes('-h')) {
    console.log(usage)
    process.exit(0)
  }
  try {
    return parseArgs(config)
  } catch (error) {
    exitWithUsage(usage, (error as Error).message)
  }
}

/** For the scripts' own checks of their options: what is wrong (if said), the usage, exit code 2. */
export function exitWithUsage(usage: string, problem?: string): never {
  console.error(problem ? `${problem}\n${usage}` : usage)
  process.exit(2)
}
