// npm run token -- --user U [--org O] [--role learner|instructor|admin|service] [--ttl 1h]
// Mints a JWT with AUTH_JWT_SECRET, or the embedded mode's dev secret.
import { loadConfigOrExit } from '../src/config.ts'
import { withDevSecret } from '../src/api/server.ts'
import { isRole } from '../src/auth/principal.ts'
import { checkedClaims, mintToken, toPrincipal, TokenError } from '../src/auth/tokens.ts'
import { exitWithUsage, parseCliArgs } from './cli-args.ts'

const USAGE = 'usage: npm run token -- --user U [--org O] [--role learner|instructor|admin|service] [--ttl 1h]'
const { values } = parseCliArgs(USAGE, {
  options: {
    user: { type: 'string' },
    org: { type: 'string' },
    role: { type: 'string', default: 'learner' },
    ttl: { type: 'string', default: '1h' },
  },
})
if (!values.user) exitWithUsage(USAGE)
if (!isRole(values.role)) exitWithUsage(USAGE, '--role must be one of learner, instructor, admin, service')
// A token the API would refuse is no use: check its claims as the API does.
try {
  toPrincipal({ sub: values.user, role: values.role, ...(values.org !== undefined ? { org_id: values.org } : {}) })
} catch (error) {
  if (!(error instanceof TokenError)) throw error
  exitWithUsage(USAGE, `the API would refuse this token: ${error.message}${/org_id/.test(error.message) ? ' (give --org)' : ''}`)
}
// Plain digits are seconds, as MintOptions takes them.
const ttl = /^\d+$/.test(values.ttl!) ? Number(values.ttl) : values.ttl!
const config = withDevSecret(loadConfigOrExit())
if (!config.AUTH_JWT_SECRET) {
  console.error('AUTH_JWT_SECRET is not set, so there is nothing to sign with')
  process.exit(2)
}
const badTtl = `--ttl ${values.ttl} is not a time span ahead such as 30m, 1h, 7d or 3600 (seconds)`
try {
  const token = await mintToken(config.AUTH_JWT_SECRET, {
    userId: values.user,
    ...(values.org !== undefined ? { orgId: values.org } : {}),
    role: values.role,
    ttl,
    ...checkedClaims(config),
  })
  const { exp } = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }
  if (exp <= Date.now() / 1000) exitWithUsage(USAGE, badTtl) // -1h or 0s: expired as it is made
  console.log(token)
} catch (error) {
  // jose knows which spans it reads (30m, 1h, 7d, 2 weeks …); it refuses the rest with this TypeError.
  if (error instanceof TypeError && /time period/i.test(error.message)) exitWithUsage(USAGE, badTtl)
  throw error
}
