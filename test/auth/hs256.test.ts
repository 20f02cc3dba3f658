// The synchronous HS256 check (src/auth/hs256.ts) against jose's jwtVerify on
// the same tokens: both must accept the same ones and refuse the others for
// the same kind of reason (expired, signature, claim, malformed), because
// that reason becomes the 401's message.
import { createHmac, createSecretKey } from 'node:crypto'
import { jwtVerify } from 'jose'
import t from 'tap'
import { readCompact, verifyHs256, type ClaimChecks } from '../../src/auth/hs256.ts'

const SECRET = 'a-test-secret-of-at-least-32-characters!'
const key = createSecretKey(Buffer.from(SECRET))
const now = Math.floor(Date.now() / 1000)

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const mac = (input: string, secret = SECRET, algorithm = 'sha256') => createHmac(algorithm, secret).update(input).digest('base64url')

/** A compact token from a header and claims (objects, or raw segments when `raw`). */
function token(header: unknown, claims: unknown, options: { secret?: string; algorithm?: string; raw?: boolean } = {}) {
  const input = options.raw ? `${header}.${claims}` : `${b64(header)}.${b64(claims)}`
  return `${input}.${mac(input, options.secret, options.algorithm)}`
}

type Kind = 'ok' | 'expired' | 'signature' | 'claim' | 'malformed'
const kindOf = (code: string | undefined): Kind =>
  code === 'ERR_JWT_EXPIRED' ? 'expired'
  : code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' ? 'signature'
  : code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' ? 'claim'
  : 'malformed'

async function byJose(jwt: string, checks: ClaimChecks = {}): Promise<Kind> {
  try {
    await jwtVerify(jwt, key, { algorithms: ['HS256'], ...checks })
    return 'ok'
  } catch (error) {
    return kindOf((error as { code?: string }).code)
  }
}

function byUs(jwt: string, checks: ClaimChecks = {}): Kind {
  try {
    verifyHs256(readCompact(jwt), key, checks)
    return 'ok'
  } catch (error) {
    return kindOf((error as { code?: string }).code)
  }
}

const HS256 = { alg: 'HS256', typ: 'JWT' }
/** Claims whose base64url fills whole groups of 4, so that one more character is the only fault (Buffer would ignore it). */
const claimsOfWholeGroups = b64(JSON.stringify({ sub: 'alice' }).padEnd(18, ' '))
const valid = token(HS256, { sub: 'alice', iat: now, exp: now + 60 })

t.test('the same verdict as jose, token by token', async (t) => {
  const cases: [string, string, Kind, ClaimChecks?][] = [
    ['minimal claims', token(HS256, { sub: 'alice' }), 'ok'],
    ['iat, nbf and exp in range', token(HS256, { sub: 'alice', iat: now, nbf: now, exp: now + 60 }), 'ok'],
    ['expired', token(HS256, { sub: 'alice', exp: now - 1 }), 'expired'],
    ['exp is now', token(HS256, { sub: 'alice', exp: now }), 'expired'],
    ['not yet valid', token(HS256, { sub: 'alice', nbf: now + 60 }), 'claim'],
    ['exp not a number', token(HS256, { sub: 'alice', exp: String(now + 60) }), 'claim'],
    ['iat not a number', token(HS256, { sub: 'alice', iat: 'yesterday' }), 'claim'],
    ['nbf checked before exp', token(HS256, { sub: 'alice', nbf: now + 60, exp: now - 1 }), 'claim'],
    ['another secret', token(HS256, { sub: 'alice' }, { secret: 'some-other-secret-of-32-characters-at-least' }), 'signature'],
    ['claims changed after signing', `${b64(HS256)}.${b64({ sub: 'alice', role: 'admin' })}.${valid.split('.')[2]}`, 'signature'],
    ['signature two bytes short', valid.slice(0, -3), 'signature'],
    ['signature of 4n+1 characters', valid.slice(0, -2), 'malformed'],
    ['signature padded', `${valid}=`, 'ok'],
    ['claims with padding', token(b64(HS256), `${claimsOfWholeGroups.slice(0, -2)}==`, { raw: true }), 'ok'],
    ['alg none, unsigned', `${b64({ alg: 'none' })}.${b64({ sub: 'alice' })}.`, 'malformed'],
    ['alg HS512', token({ alg: 'HS512' }, { sub: 'alice' }, { algorithm: 'sha512' }), 'malformed'],
    ['alg in lower case', token({ alg: 'hs256' }, { sub: 'alice' }), 'malformed'],
    ['no alg', token({ typ: 'JWT' }, { sub: 'alice' }), 'malformed'],
    ['RS256 named, HMAC signed (algorithm confusion)', token({ alg: 'RS256' }, { sub: 'alice' }), 'malformed'],
    ['an unknown crit', token({ ...HS256, crit: ['exp'], exp: 1 }, { sub: 'alice' }), 'malformed'],
    ['header is an array', token(['HS256'], { sub: 'alice' }), 'malformed'],
    ['header is not JSON', token('{alg:HS256}', { sub: 'alice' }), 'malformed'],
    ['header is not UTF-8', token(Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url'), b64({ sub: 'alice' }), { raw: true }), 'malformed'],
    ['claims are an array', token(HS256, ['alice']), 'malformed'],
    ['claims are not JSON', token(HS256, 'sub=alice'), 'malformed'],
    ['claims segment of 4n+1 characters', token(b64(HS256), `${claimsOfWholeGroups}A`, { raw: true }), 'malformed'],
    ['two segments', valid.split('.').slice(0, 2).join('.'), 'malformed'],
    ['four segments', `${valid}.${valid.split('.')[2]}`, 'malformed'],
    ['a character outside base64url in the signature', `${valid.slice(0, -1)}*`, 'malformed'],
    ['base64 rather than base64url in the header', token('eyJhbGciOiJIUzI1NiJ9+', b64({ sub: 'alice' }), { raw: true }), 'malformed'],
    ['not ASCII in the claims segment', token(b64(HS256), `${b64({ sub: 'alice' })}é`, { raw: true }), 'malformed'],
    ['empty', '', 'malformed'],
    ['issuer as configured', token(HS256, { sub: 'alice', iss: 'https://idp.example' }), 'ok', { issuer: 'https://idp.example' }],
    ['another issuer', token(HS256, { sub: 'alice', iss: 'https://evil.example' }), 'claim', { issuer: 'https://idp.example' }],
    ['no issuer', token(HS256, { sub: 'alice' }), 'claim', { issuer: 'https://idp.example' }],
    ['audience in a list', token(HS256, { sub: 'alice', aud: ['x', 'learning-events'] }), 'ok', { audience: 'learning-events' }],
    ['another audience', token(HS256, { sub: 'alice', aud: 'x' }), 'claim', { audience: 'learning-events' }],
    ['audience not a string', token(HS256, { sub: 'alice', aud: 5 }), 'claim', { audience: 'learning-events' }],
    ['no audience', token(HS256, { sub: 'alice' }), 'claim', { audience: 'learning-events' }],
  ]
  for (const [name, jwt, expected, checks] of cases) {
    t.equal(await byJose(jwt, checks), expected, `jose: ${name}`)
    t.equal(byUs(jwt, checks), expected, `ours: ${name}`)
  }
})

t.test('refuses crit and b64 headers that jose would accept', async (t) => {
  const withB64 = token({ ...HS256, crit: ['b64'], b64: true }, { sub: 'alice' })
  t.equal(await byJose(withB64), 'ok', 'jose accepts crit ["b64"] with b64 true')
  t.equal(byUs(withB64), 'malformed', 'we refuse it')
})

t.test('single-character changes anywhere in a token: the same verdict as jose', async (t) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.='
  let seed = 7
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n)
  const kinds = new Map<Kind, number>()
  const disagreements: string[] = []
  for (let k = 0; k < 600; k++) {
    const at = random(valid.length)
    const char = alphabet[random(alphabet.length)]!
    const mutated = [
      valid.slice(0, at) + char + valid.slice(at + 1), // replaced
      valid.slice(0, at) + valid.slice(at + 1), // removed
      valid.slice(0, at) + char + valid.slice(at), // inserted
    ][k % 3]!
    const ours = byUs(mutated)
    kinds.set(ours, (kinds.get(ours) ?? 0) + 1)
    const theirs = await byJose(mutated)
    if (ours !== theirs) disagreements.push(`${mutated}: jose ${theirs}, ours ${ours}`)
  }
  t.same(disagreements, [], 'no disagreement in 600 tokens')
  t.ok((kinds.get('signature') ?? 0) > 0 && (kinds.get('malformed') ?? 0) > 0, `verdicts ${JSON.stringify([...kinds])}`)
})
