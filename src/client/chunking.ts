// Cutting stored events into request bodies. Pure, so it runs (and is tested)
// in Node as well as the browser. Events are stored already serialized with
// their UTF-8 size, so a body's size is known exactly before it is built.

export interface Sized {
  /** The event serialized as JSON. */
  json: string
  /** UTF-8 bytes of json. */
  bytes: number
}

/** Fetch's keepalive cap is 64 KiB of bodies in flight per page; leave room for other beacons. */
export const KEEPALIVE_BUDGET_BYTES = 60 * 1024

const HEAD = '{"events":['
const SENT_AT = '],"sentAt":"'
const TAIL = '"}'
/** new Date().toISOString() is 24 characters (years 0-9999). */
const SENT_AT_LENGTH = 24
const ENVELOPE_BYTES = HEAD.length + SENT_AT.length + SENT_AT_LENGTH + TAIL.length

const encoder = new TextEncoder()
export const utf8Length = (text: string): number => encoder.encode(text).length

/** Exact size of encodeBody(items, sentAt). */
export function bodyBytes(items: readonly Sized[]): number {
  let total = ENVELOPE_BYTES + Math.max(0, items.length - 1)
  for (const item of items) total += item.bytes
  return total
}

export function encodeBody(items: readonly Sized[], sentAt: string): string {
  return HEAD + items.map((item) => item.json).join(',') + SENT_AT + sentAt + TAIL
}

/**
 * The longest prefix of items that fits both limits. Never empty for a
 * non-empty input: an event too big on its own goes alone, and the server's
 * 413 then isolates it.
 */
export function takeChunk<T extends Sized>(items: readonly T[], maxEvents: number, maxBytes: number): T[] {
  let size = ENVELOPE_BYTES - 1 // the first event needs no comma
  let count = 0
  for (const item of items) {
    if (count >= maxEvents) break
    size += item.bytes + 1
    if (size > maxBytes && count > 0) break
    count++
  }
  return items.slice(0, count)
}

/** Whether a body this size may be sent with keepalive, given the bytes already in flight. */
export const fitsKeepalive = (bytes: number, inFlightBytes: number): boolean => bytes + inFlightBytes <= KEEPALIVE_BUDGET_BYTES
