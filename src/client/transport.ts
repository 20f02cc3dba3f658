// One POST of a batch body. Requests go out with keepalive whenever the body
// fits the page's keepalive budget, so a request in flight survives the tab
// closing; larger bodies go without it (and are retried on the next load).
import { fitsKeepalive } from './chunking.ts'

export interface Reply {
  status: number
  /** Parsed JSON, or undefined when the body is not JSON. */
  body: unknown
  retryAfter: string | null
  lag: string | null
  latencyMs: number
}

/** A request that never answers must not hold its queue forever. */
export const REQUEST_TIMEOUT_MS = 30000

// The keepalive cap is per page (fetch spec: 64 KiB of bodies in flight),
// shared by every queue and client on it, so the count is too.
let keepaliveBytesInFlight = 0
export const keepaliveInFlight = (): number => keepaliveBytesInFlight

/** Resolves with the answer; rejects on a network error or timeout. */
export async function postBatch(url: string, token: string, body: string, bytes: number, depth: number): Promise<Reply> {
  const keepalive = fitsKeepalive(bytes, keepaliveBytesInFlight)
  if (keepalive) keepaliveBytesInFlight += bytes
  const started = performance.now()
  try {
    const response = await fetch(url, {
      method: 'POST',
      keepalive,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-client-queue-depth': String(depth) },
      body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
    const text = await response.text()
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = undefined
    }
    return {
      status: response.status,
      body: parsed,
      retryAfter: response.headers.get('retry-after'),
      lag: response.headers.get('x-client-queue-lag'),
      latencyMs: performance.now() - started,
    }
  } finally {
    if (keepalive) keepaliveBytesInFlight -= bytes
  }
}
