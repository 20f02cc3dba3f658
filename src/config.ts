// One schema for every setting the service reads from the environment.
// The Config type is derived from it, and loadConfig is the only place that
// reads process.env (callers pass the environment in, so tests can too).
import path from 'node:path'
import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'
import { loadDevSecrets } from './dev-secrets.ts'

const Integer = (defaultValue: number, minimum: number, maximum = Number.MAX_SAFE_INTEGER) =>
  Type.Integer({ default: defaultValue, minimum, maximum })

export const ConfigSchema = Type.Object({
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ default: './.data', minLength: 1 }),
  HOST: Type.String({ default: '127.0.0.1', minLength: 1 }),
  PORT: Integer(3000, 0, 65535),
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
  // "N per M minutes"; parsed by refreshLimit() below.
  REFRESH_LIMIT: Type.String({ default: '5 per 10 minutes', pattern: '^\\d+ per \\d+ minutes?$' }),
  LAG_SLO_MS: Integer(250, 1, 600000),
  RETENTION_DAYS: Integer(30, 1, 3650),
  PARTITIONS_AHEAD_DAYS: Integer(7, 1, 365),
  MAX_FUTURE_MS: Integer(86400000, 0, 30 * 86400000),
  STALE_AFTER_MS: Integer(21600000, 1000, 30 * 86400000),
  DAILY_BATCH_CRON: Type.String({ default: '0 2 * * *', pattern: '^\\S+( \\S+){4,5}$' }),
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
    if (value !== undefined && value !== '') raw[name] = value
  }
  const converted = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, raw))
  const [first] = Value.Errors(ConfigSchema, converted)
  if (first) {
    const variable = first.instancePath.replace(/^\//, '') || String((first.params as { requiredProperties?: string[] }).requiredProperties?.[0] ?? '?')
    const schema = ConfigSchema.properties[variable as keyof RawConfig] as { anyOf?: { const: string }[] } | undefined
    const reason = schema?.anyOf ? `must be one of ${schema.anyOf.map((s) => s.const).join(', ')}` : first.message
    throw new ConfigError(variable, `${reason} (got ${JSON.stringify(raw[variable] ?? null)})`)
  }
  const config = converted as RawConfig
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
  const [max, , minutes] = config.REFRESH_LIMIT.split(' ')
  return { max: Number(max), windowMs: Number.parseInt(minutes ?? '10', 10) * 60000 }
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
