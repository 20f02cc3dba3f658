// Cohort discovery for one org (docs/analytics.md, "Cohorts"): stage every
// learner's traits in the database, stream them through a cursor into a fixed
// grid (constant memory however many learners), cluster the grid's weighted
// cells with k-means++ (fixed seed, k by simplified silhouette), name the
// archetypes from their centroids, and let store_cohorts (sql/000027) assign
// every learner in one statement.
import type { Sql } from '../db/pool.ts'
import { chooseK, type WeightedPoints } from './kmeans.ts'

export const TRAITS = ['velocity', 'affinity', 'retention'] as const
/** Grid steps per trait: cells are 0.02 wide, at most 51^3 of them. */
export const GRID_STEPS = 50
export const COHORT_SEED = 20240305
export const MIN_K = 2
export const MAX_K = 6
const CURSOR_ROWS = 2000

export const COHORT_METHOD =
  `k-means++ (seed ${COHORT_SEED}, best of 4 starts) on a ${1 / GRID_STEPS} trait grid; ` +
  `k in ${MIN_K}..${MAX_K} by the highest simplified silhouette, at most the number of occupied cells (0 with no learners)`

/** Learners counted per grid cell. Traits are in [0, 1]; each is rounded to the grid. */
export class TraitGrid {
  readonly #cells = new Map<number, number>()
  readonly #steps: number
  learners = 0

  constructor(steps = GRID_STEPS) {
    this.#steps = steps
  }

  add(velocity: number, affinity: number, retention: number): void {
    const side = this.#steps + 1
    const cell = (value: number) => Math.min(this.#steps, Math.max(0, Math.round(value * this.#steps)))
    const key = (cell(velocity) * side + cell(affinity)) * side + cell(retention)
    this.#cells.set(key, (this.#cells.get(key) ?? 0) + 1)
    this.learners++
  }

  get cells(): number {
    return this.#cells.size
  }

  /** The occupied cells as weighted points, in key order (independent of arrival order). */
  points(): WeightedPoints {
    const side = this.#steps + 1
    const keys = [...this.#cells.keys()].sort((a, b) => a - b)
    const coords = new Float64Array(keys.length * 3)
    const weights = new Float64Array(keys.length)
    keys.forEach((key, i) => {
      coords[i * 3] = Math.floor(key / (side * side)) / this.#steps
      coords[i * 3 + 1] = (Math.floor(key / side) % side) / this.#steps
      coords[i * 3 + 2] = (key % side) / this.#steps
      weights[i] = this.#cells.get(key) as number
    })
    return { dim: 3, coords, weights }
  }
}

export interface Centroid {
  velocity: number
  affinity: number
  retention: number
}

/**
 * An archetype's name from its centroid: pace (velocity 0.3 = 3 lessons a
 * week), focus (affinity: share of time in the top category) and habit
 * (retention: share of the last 28 days active).
 */
export function archetypeName(centroid: Centroid): string {
  const pace = centroid.velocity >= 0.3 ? 'Fast' : centroid.velocity >= 0.1 ? 'Steady' : 'Slow'
  const focus = centroid.affinity >= 0.7 ? 'focused' : 'exploring'
  const habit = centroid.retention >= 0.5 ? 'regulars' : centroid.retention >= 0.15 ? 'drop-ins' : 'sleepers'
  return `${pace} ${focus} ${habit}`
}

export interface Archetype {
  cluster: number
  name: string
  count: number
  centroid: Centroid
}

export interface CohortResult {
  orgId: string
  learners: number
  cells: number
  k: number
  silhouette: number
  tried: { k: number; silhouette: number }[]
  archetypes: Archetype[]
}

/** Fills a grid from a stream of trait rows (the job reads a cursor; the benchmark a generator). */
export async function fillGrid(rows: AsyncIterable<readonly Centroid[]>, grid = new TraitGrid()): Promise<TraitGrid> {
  for await (const batch of rows) for (const row of batch) grid.add(row.velocity, row.affinity, row.retention)
  return grid
}

/** Clusters a filled grid: centroids numbered by descending velocity, then retention, then affinity. */
export function clusterGrid(grid: TraitGrid, seed = COHORT_SEED) {
  if (grid.learners === 0) return { centroids: [] as (Centroid & { cluster: number; name: string })[], silhouette: 0, tried: [] }
  const { best, tried } = chooseK(grid.points(), seed, MIN_K, MAX_K)
  const centroids = Array.from({ length: best.k }, (_, c) => ({
    velocity: best.centroids[c * 3] as number,
    affinity: best.centroids[c * 3 + 1] as number,
    retention: best.centroids[c * 3 + 2] as number,
  }))
    .sort((a, b) => b.velocity - a.velocity || b.retention - a.retention || b.affinity - a.affinity)
    .map((centroid, cluster) => ({ cluster, ...centroid, name: archetypeName(centroid) }))
  // Two clusters may fall in the same named region: number the later ones.
  const seen = new Map<string, number>()
  for (const centroid of centroids) {
    const n = (seen.get(centroid.name) ?? 0) + 1
    seen.set(centroid.name, n)
    if (n > 1) centroid.name = `${centroid.name} ${n}`
  }
  return { centroids, silhouette: best.silhouette, tried: tried.map(({ k, silhouette }) => ({ k, silhouette })) }
}

/**
 * Discovers and stores one org's cohorts as of `now`, in one transaction:
 * stage the traits, stream them into the grid, cluster, assign.
 */
export async function discoverCohorts(sql: Sql, orgId: string, now: Date = new Date(), seed = COHORT_SEED): Promise<CohortResult> {
  return sql.begin(async (tx) => {
    await tx`select stage_cohort_traits(${orgId}, ${now})`
    const grid = await fillGrid(
      tx<Centroid[]>`select velocity, affinity, retention from cohort_members where org_id = ${orgId}`.cursor(CURSOR_ROWS),
    )
    const { centroids, silhouette, tried } = clusterGrid(grid, seed)
    const [row] = await tx<{ archetypes: Archetype[] }[]>`
      select store_cohorts(${orgId}, ${now}, ${COHORT_METHOD}, ${silhouette},
                           ${JSON.stringify(centroids)}::text::jsonb) as archetypes`
    const archetypes = row?.archetypes ?? []
    return {
      orgId,
      learners: archetypes.reduce((sum, archetype) => sum + archetype.count, 0),
      cells: grid.cells,
      k: centroids.length,
      silhouette,
      tried,
      archetypes,
    }
  }) as Promise<CohortResult>
}

/** Every org with learners, one after another; stops between orgs once aborted. */
export async function discoverAllCohorts(sql: Sql, now: Date, signal?: AbortSignal): Promise<{ orgs: number; learners: number }> {
  const orgs = await sql<{ org_id: string }[]>`
    select distinct org_id from assignments where role = 'learner' order by org_id`
  let learners = 0
  for (const { org_id: orgId } of orgs) {
    if (signal?.aborted) throw new Error('cohort discovery stopped')
    learners += (await discoverCohorts(sql, orgId, now)).learners
  }
  return { orgs: orgs.length, learners }
}
