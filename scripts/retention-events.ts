// npm run retention:events [-- --yes] [-- --dry-run]: snapshots every event
// partition older than RETENTION_DAYS to SNAPSHOT_DIR, verifies it, then drops
// it (what workers do nightly). Destructive, so it first prints what it will
// do, and asks on a terminal; elsewhere it needs --yes.
import { createInterface } from 'node:readline/promises'
import { counted } from '../src/counted.ts'
import { planRetention, retentionJob, type RetentionSummary } from '../src/workers/retention.ts'
import { parseCliArgs } from './cli-args.ts'
import { openSession, runJobScript } from './job-script.ts'

const { values } = parseCliArgs('usage: npm run retention:events [-- --yes] [-- --dry-run]', {
  options: { yes: { type: 'boolean', short: 'y' }, 'dry-run': { type: 'boolean' } },
})
const session = await openSession(retentionJob.name)
const { config } = session
const plan = await planRetention(session.sql, config.RETENTION_DAYS).catch(async (error: Error) => {
  console.error(`retention failed: ${error.message}`)
  await session.close()
  process.exit(1)
})
if (plan.partitions.length === 0 && plan.deadLetterDays.length === 0) {
  console.log(`retention: nothing older than ${plan.before} (RETENTION_DAYS=${config.RETENTION_DAYS}); nothing to do`)
  await session.close()
  process.exit(0)
}
console.log(`retention: RETENTION_DAYS=${config.RETENTION_DAYS}, so data of days before ${plan.before} is snapshotted to ${config.SNAPSHOT_DIR}, verified, then dropped:`)
for (const p of plan.partitions) console.log(`  drop partition ${p.partition} (${counted(p.rows, 'row')}${p.attached ? '' : ', already detached'})`)
for (const d of plan.deadLetterDays) console.log(`  delete dead letters of ${d.day} (${counted(d.rows, 'row')})`)

if (values['dry-run']) {
  await session.close()
  process.exit(0)
}
if (!values.yes) {
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    console.error('retention: not on a terminal; pass --yes to go ahead (npm run retention:events -- --yes)')
    await session.close()
    process.exit(2)
  }
  const prompt = createInterface({ input: process.stdin, output: process.stdout })
  const answer = await prompt.question('Proceed? [y/N] ')
  prompt.close()
  if (!/^y(es)?$/i.test(answer.trim())) {
    console.log('retention: cancelled')
    await session.close()
    process.exit(0)
  }
}

await runJobScript<RetentionSummary>(
  retentionJob,
  (result) => {
    if (result.skipped) return `retention: skipped (${result.skipped})`
    const rows = result.dropped.reduce((sum, d) => sum + d.rows, 0)
    const deferred = result.deferred.length ? `; ${result.deferred.length} deferred (${result.deferred.map((d) => `${d.partition}: ${d.reason}`).join('; ')})` : ''
    return `retention: dropped ${result.dropped.length} partitions (${rows} rows) and ${result.deadLetters.length} days of dead letters, snapshots in ${config.SNAPSHOT_DIR}${deferred}`
  },
  session,
)
