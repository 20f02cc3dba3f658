// CPU seconds and memory of processes, from /proc (Linux): what a bench run
// charges to the API, PostgreSQL (the postmaster and every backend, including
// exited ones through cutime) and the load generator.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

interface Stat {
  pid: number
  ppid: number
  /** utime + stime, seconds */
  own: number
  /** cutime + cstime of reaped children, seconds */
  reaped: number
}

function readStat(pid: number): Stat | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name may hold spaces and parentheses: fields start after the last ')'
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    const tick = (k: number) => Number(fields[k - 3]) / TICKS_PER_SECOND
    return { pid, ppid: Number(fields[1]), own: tick(14) + tick(15), reaped: tick(16) + tick(17) }
  } catch {
    return undefined
  }
}

/** CPU seconds used so far by pid and all its descendants, living or reaped. */
export function treeCpuSeconds(pid: number): number {
  const stats = fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readStat(Number(name)))
    .filter((stat): stat is Stat => stat !== undefined)
  const children = new Map<number, Stat[]>()
  for (const stat of stats) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), stat])
  const root = stats.find((stat) => stat.pid === pid)
  if (!root) return 0
  let total = 0
  const visit = (stat: Stat) => {
    total += stat.own + stat.reaped
    for (const child of children.get(stat.pid) ?? []) visit(child)
  }
  visit(root)
  return total
}

/** Resident set size in MB, or 0 when the process is gone. */
export function rssMb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Math.round(Number(match[1]) / 1024) : 0
  } catch {
    return 0
  }
}

/** Samples a process's RSS until stopped; reports the peak and the last value. */
export function watchRss(pid: number, everyMs = 250): { stop(): { peakMb: number; lastMb: number } } {
  let peakMb = rssMb(pid)
  let lastMb = peakMb
  const timer = setInterval(() => {
    const now = rssMb(pid)
    if (now > 0) lastMb = now
    peakMb = Math.max(peakMb, now)
  }, everyMs)
  return {
    stop() {
      clearInterval(timer)
      return { peakMb, lastMb }
    },
  }
}
