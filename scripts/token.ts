// npm run token -- --user U [--org O] [--role learner|instructor|admin|service] [--ttl 1h]
// Mints a JWT with AUTH_JWT_SECRET, or the embedded mode's dev secret.
import { loadConfigOrExit } from '../src/config.ts'
import { withDevSecret } from '../src/api/server.ts'
import { isRole } from '../src/auth/principal.ts'
import { checkedClaims, mintToken } from '../src/auth/tokens.ts'
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
const config = withDevSecret(loadConfigOrExit())
if (!config.AUTH_JWT_SECRET) {
  console.error('AUTH_JWT_SECRET is not set, so there is nothing to sign with')
  process.exit(2)
}
try {
  console.log(
    await mintToken(config.AUTH_JWT_SECRET, {
      userId: values.user,
      ...(values.org ? { orgId: values.org } : {}),
      role: values.role as 'learner',
      ttl: values.ttl!,
      ...checkedClaims(config),
    }),
  )
} catch (error) {
  // jose knows which spans it reads (30m, 1h, 7d, 2 weeks …); it refuses the rest with this TypeError.
  if (error instanceof TypeError && /time period/i.test(error.message)) exitWithUsage(USAGE, `--ttl ${values.ttl} is not a time span such as 30m, 1h or 7d`)
  throw error
}
