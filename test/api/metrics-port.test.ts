// METRICS_PORT: GET /metrics on its own port, which a platform's public proxy
// does not publish, and no longer on the API's.
import t from 'tap'
import { startApiOrExit } from '../../src/api/server.ts'
import { loadConfig } from '../../src/config.ts'
import { freePort } from '../../src/db/embedded.ts'
import { TEST_SECRET, testDatabase } from '../helper.ts'

t.test('with METRICS_PORT, /metrics is served there only', async (t) => {
  const url = await testDatabase(t)
  const metricsPort = await freePort()
  const config = loadConfig({ DATABASE_URL: url, AUTH_JWT_SECRET: TEST_SECRET, PORT: '0', METRICS_PORT: String(metricsPort), LOG_LEVEL: 'silent' })
  const api = await startApiOrExit(config, { url, embedded: false, release: async () => {} })
  t.teardown(() => api.close())

  const health = await fetch(`${api.url}/api/health`)
  t.equal(health.status, 200, 'the API answers on its port')
  t.equal((await fetch(`${api.url}/metrics`)).status, 404, 'which no longer serves /metrics')

  const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(metrics.status, 200)
  t.match(metrics.headers.get('content-type'), /^text\/plain/)
  t.match(await metrics.text(), /http_requests_total\{route="\/api\/health",method="GET",status="200"\} 1/, "the API's own counts")
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/api/health`)).status, 404, 'the metrics port serves nothing else')
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST' })).status, 404)

  await api.close()
  await t.rejects(fetch(`http://127.0.0.1:${metricsPort}/metrics`), 'closing the API closes the metrics port')
})
