// The caller's getToken, asked as rarely as possible: the token is cached
// (pagehide needs one synchronously) and asked again only after a 401.
// Concurrent askers share one call.
export class TokenSource {
  readonly getToken: () => string | Promise<string>
  /** The last token obtained, if any. */
  current: string | undefined
  private asking: Promise<string> | undefined

  constructor(getToken: () => string | Promise<string>) {
    this.getToken = getToken
  }

  get(): Promise<string> {
    if (this.current !== undefined) return Promise.resolve(this.current)
    this.asking ??= (async () => {
      try {
        const token = await this.getToken()
        if (typeof token !== 'string' || token === '') throw new TypeError('getToken must return a non-empty string')
        return (this.current = token)
      } finally {
        this.asking = undefined
      }
    })()
    return this.asking
  }

  /** After a 401 with `stale`: forget it, unless another request already replaced it. */
  invalidate(stale: string): void {
    if (this.current === stale) this.current = undefined
  }
}
