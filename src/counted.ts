// "1 course", "5 courses": the one place a count and its noun are put together
// for messages and logs.
export function counted(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`
}
