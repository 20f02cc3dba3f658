// One schema for every setting the service reads from the environment.
// The Config type is derived from it, and loadConfig is the only place that
// reads process.env (callers pass the environment in, so tests can too).
import net from 'node:net'
import path from 'node:path'
// The parser pg-boss reads schedules with.
import { CronExpressionParser } from 'cron-parser'
import { Type, type Static, type TInteger } from 'typebox'
import { Value } from 'typebox/value'
import { counted } from './counted.ts'
import { readConnectionUrl } from './db/connection-url.ts'
import { loadDevSecrets } from './dev-secrets.ts'

const DAY_MS = 86400000

// Every integer setting has bounds, which readInteger states in its line.
type Bounded = TInteger & { minimum: number; maximum: number }
const Integer = (defaultValue: number, minimum: number, maximum = Number.MAX_SAFE_INTEGER) =>
  Type.Integer({ default: defaultValue, minimum, maximum }) as Bounded

export const ConfigSchema = Type.Object({
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ default: './.data', minLength: 1 }),
  HOST: Type.String({ default: '127.0.0.1', minLength: 1 }),
  PORT: Integer(3000, 0, 65535),
  // GET /metrics on this port instead of PORT (on HOST), for a scraper on a private network; unset = on PORT.
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 }) as Bounded),
  AUTH_JWT_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  AUTH_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  AUTH_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  AUTH_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  MAX_BATCH_EVENTS: Integer(100, 1, 10000),
  MAX_BATCH_BYTES: Integer(262144, 1024, 16 * 1024 * 1024),
  RATE_LIMIT_BATCHES_PER_SECOND: Integer(5, 1, 100000),
  // Browser origins allowed by CORS: comma-separated, `*` for any; unset = CORS off.
  CORS_ORIGINS: Type.Optional(Type.String({ pattern: '^\\s*(\\*|https?://[^,\\s/]+)\\s*(,\\s*(\\*|https?://[^,\\s/]+)\\s*)*,?\\s*$' })),
  // "N per M minutes"; bounded by CHECKS and parsed by refreshLimit() below.
  REFRESH_LIMIT: Type.String({ default: '5 per 10 minutes', pattern: '^\\d+ per \\d+ minutes?$' }),
  LAG_SLO_MS: Integer(250, 1, 600000),
  RETENTION_DAYS: Integer(30, 1, 3650),
  PARTITIONS_AHEAD_DAYS: Integer(7, 1, 365),
  MAX_FUTURE_MS: Integer(86400000, 0, 30 * 86400000),
  STALE_AFTER_MS: Integer(21600000, 1000, 30 * 86400000),
  // Five-field cron, checked by CHECKS below.
  DAILY_BATCH_CRON: Type.String({ default: '0 2 * * *' }),
  SNAPSHOT_DIR: Type.Optional(Type.String({ minLength: 1 })),
  DB_POOL_MAX: Integer(10, 1, 1000),
  // Coalesce concurrent ingestion calls into one procedure call (src/ingest/group-commit.ts).
  GROUP_COMMIT: Type.Boolean({ default: true }),
  LOG_LEVEL: Type.Union(
    [
      Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
      Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent'),
    ],
    { default: 'info' },
  ),
})

type RawConfig = Static<typeof ConfigSchema>
export type Config = RawConfig & { SNAPSHOT_DIR: string; embedded: boolean }

export class ConfigError extends Error {
  readonly variable: string
  constructor(variable: string, reason: string) {
    super(`Invalid configuration: ${variable} ${reason}`)
    this.name = 'ConfigError'
    this.variable = variable
  }
}

const names = Object.keys(ConfigSchema.properties) as (keyof RawConfig)[]

/** Variables whose value may hold a password or a secret: never echoed in the line. */
const SECRETS = new Set<string>(['DATABASE_URL', 'AUTH_JWT_SECRET', 'REDIS_URL'])

function refuse(variable: string, reason: string, value: unknown): ConfigError {
  return new ConfigError(variable, SECRETS.has(variable) ? reason : `${reason} (got ${JSON.stringify(value ?? null)})`)
}

/**
 * Integers are plain decimal digits, read here rather than by Value.Convert,
 * which would take `1.5`, `true`, `0x10`, `1e3` or ` 50` for a number.
 */
function readInteger(variable: string, { minimum, maximum }: Bounded, text: string): number {
  const value = Number(text)
  if (!/^\d+$/.test(text) || value < minimum || value > maximum) {
    throw refuse(variable, `must be a whole number from ${minimum} to ${maximum}`, text)
  }
  return value
}

/** What a variable's pattern asks for, in words: the schema's own message quotes the regular expression. */
const PATTERN_WORDS: { [K in keyof RawConfig]?: string } = {
  DATABASE_URL: 'must be a postgres:// or postgresql:// URL',
  AUTH_JWKS_URL: 'must be an http:// or https:// URL',
  REDIS_URL: 'must be a redis:// or rediss:// URL',
  CORS_ORIGINS: 'must be * or comma-separated origins, each a scheme and a host with no path (https://learn.example.com,http://localhost:5173)',
  REFRESH_LIMIT: 'must be "N per M minutes", such as "5 per 10 minutes"',
}

// REFRESH_LIMIT's count goes to an integer parameter; its window counts
// job_requests rows, which are kept 7 days (src/analytics/compute.ts).
const REFRESH_MAX = 1_000_000
const REFRESH_WINDOW_MAX_MINUTES = 7 * 24 * 60

function urlProblem(value: string): string | undefined {
  return URL.canParse(value) ? undefined : 'is not a URL that parses (check the host, the port, and that the password is percent-encoded)'
}

/**
 * What the schema cannot say, checked once it holds: why a value is refused,
 * or undefined. Values later code parses (URLs, the schedule) are parsed here
 * the same way, so a bad one is this one line rather than a crash at first use.
 */
const CHECKS: { [K in keyof RawConfig]?: (value: string) => string | undefined } = {
  DATABASE_URL: (value) => {
    try {
      return urlProblem(value) ?? void readConnectionUrl(value)
    } catch (error) {
      return (error as Error).message
    }
  },
  // An IP address or a name; whether a name resolves is only known at listen (src/api/server.ts).
  HOST: (value) =>
    net.isIP(value) || (/^[\w.-]+$/.test(value) && !/^[\d.]+$/.test(value)) ? undefined : 'must be an IP address or a host name',
  AUTH_JWKS_URL: urlProblem,
  REDIS_URL: urlProblem,
  REFRESH_LIMIT: (value) => {
    const { max, windowMs } = refreshLimit({ REFRESH_LIMIT: value })
    if (max >= 1 && max <= REFRESH_MAX && windowMs >= 60000 && windowMs <= REFRESH_WINDOW_MAX_MINUTES * 60000) return undefined
    return `must be "N per M minutes" with N from 1 to ${REFRESH_MAX} and M from 1 to ${REFRESH_WINDOW_MAX_MINUTES} (a week)`
  },
  DAILY_BATCH_CRON: (value) => {
    // cron-parser reads six fields seconds-first: "0 2 * * * *" would run hourly.
    if (value.trim().split(/\s+/).length !== 5) return 'must have five fields: minute hour day-of-month month day-of-week'
    try {
      CronExpressionParser.parse(value, { tz: 'UTC', strict: false })
      return undefined
    } catch (error) {
      return `is not a cron schedule: ${(error as Error).message}`
    }
  },
}

export interface LoadOptions {
  /**
   * Whether this process checks tokens (the API) or mints them, and so needs
   * their secret with DATABASE_URL. Migrations, seeding, job scripts and the
   * worker never touch a token: they run without it (default true).
   */
  tokens?: boolean
}

/** Validates the environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env, options: LoadOptions = {}): Config {
  const raw: Record<string, unknown> = {}
  for (const name of names) {
    const value = env[name]
    if (value === undefined || value === '') continue
    const schema = ConfigSchema.properties[name]
    raw[name] = Type.IsInteger(schema) ? readInteger(name, schema, value) : value
  }
  const converted = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, raw))
  const [first] = Value.Errors(ConfigSchema, converted)
  if (first) {
    const variable = first.instancePath.replace(/^\//, '') || String((first.params as { requiredProperties?: string[] }).requiredProperties?.[0] ?? '?')
    const schema = ConfigSchema.properties[variable as keyof RawConfig] as { anyOf?: { const: string }[] } | undefined
    const reason = schema?.anyOf ? `must be one of ${schema.anyOf.map((s) => s.const).join(', ')}` : (PATTERN_WORDS[variable as keyof RawConfig] ?? first.message)
    throw refuse(variable, reason, raw[variable])
  }
  const config = converted as RawConfig
  for (const name of names) {
    const value = config[name]
    const problem = typeof value === 'string' ? CHECKS[name]?.(value) : undefined
    if (problem) throw refuse(name, problem, value)
  }
  // Every occurredAt the window admits needs its day's partition, and the day
  // PARTITIONS_AHEAD_DAYS ahead is made up to an hour after midnight: one day spare.
  if (config.MAX_FUTURE_MS + DAY_MS > config.PARTITIONS_AHEAD_DAYS * DAY_MS) {
    throw new ConfigError(
      'MAX_FUTURE_MS',
      `(${config.MAX_FUTURE_MS}) must be at least a day less than PARTITIONS_AHEAD_DAYS (${counted(config.PARTITIONS_AHEAD_DAYS, 'day')}): later events would have no partition`,
    )
  }
  const embedded = config.DATABASE_URL === undefined
  if ((options.tokens ?? true) && !embedded && !config.AUTH_JWT_SECRET && !config.AUTH_JWKS_URL) {
    throw new ConfigError('AUTH_JWT_SECRET', 'is required when DATABASE_URL is set (or set AUTH_JWKS_URL)')
  }
  return {
    ...config,
    DATA_DIR: path.resolve(config.DATA_DIR),
    SNAPSHOT_DIR: path.resolve(config.SNAPSHOT_DIR ?? path.join(config.DATA_DIR, 'snapshots')),
    embedded,
  }
}

/** REFRESH_LIMIT as a count and a window. */
export function refreshLimit(config: Pick<Config, 'REFRESH_LIMIT'>): { max: number; windowMs: number } {
  const [max = 0, , minutes = 0] = config.REFRESH_LIMIT.split(' ').map(Number)
  return { max, windowMs: minutes * 60000 }
}

/**
 * In embedded mode every process first uses DATA_DIR for the dev secrets (the
 * database password at least): one where they cannot be made or read is a bad
 * setting too, said in the same one line.
 */
function ensureDataDir(config: Config): void {
  if (!config.embedded) return
  try {
    loadDevSecrets(config.DATA_DIR)
  } catch (error) {
    throw new ConfigError('DATA_DIR', `(${config.DATA_DIR}) cannot be used: ${(error as Error).message}`)
  }
}

/** For entry points: load the config or print one line and exit non-zero. */
export function loadConfigOrExit(options: LoadOptions = {}, env: Record<string, string | undefined> = process.env): Config {
  try {
    const config = loadConfig(env, options)
    ensureDataDir(config)
    return config
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`)
      process.exit(78) // EX_CONFIG
    }
    throw error
  }
}
