// Weighted k-means++ with a seeded generator, and the choice of k by the
// simplified silhouette. Pure functions over weighted points: the cohort job
// feeds it the cells of a trait grid (src/analytics/cohorts.ts), so its cost
// depends on the number of distinct cells, not of learners.

/** A small, fast, seedable generator (mulberry32): the same seed, the same clusters. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export interface WeightedPoints {
  dim: number
  /** n * dim coordinates, point after point. */
  coords: Float64Array
  weights: Float64Array
}

export interface Clustering {
  k: number
  /** k * dim coordinates. */
  centroids: Float64Array
  /** The cluster of each point. */
  assignment: Int32Array
  /** Weighted sum of squared distances to the own centroid. */
  inertia: number
  /** Weighted mean simplified silhouette, in [-1, 1]. */
  silhouette: number
}

const size = (points: WeightedPoints) => points.weights.length

function squaredDistance(coords: Float64Array, i: number, centroids: Float64Array, c: number, dim: number): number {
  let sum = 0
  for (let d = 0; d < dim; d++) {
    const delta = (coords[i * dim + d] as number) - (centroids[c * dim + d] as number)
    sum += delta * delta
  }
  return sum
}

/** Index of the first point whose cumulative weight passes `target`. */
function pickByWeight(weights: ArrayLike<number>, total: number, random: () => number): number {
  let target = random() * total
  for (let i = 0; i < weights.length; i++) {
    target -= weights[i] as number
    if (target < 0) return i
  }
  return weights.length - 1
}

/** k-means++ seeding: each next centre with probability proportional to weight x squared distance. */
function seedCentroids(points: WeightedPoints, k: number, random: () => number): Float64Array {
  const { dim, coords, weights } = points
  const n = size(points)
  const centroids = new Float64Array(k * dim)
  const totalWeight = weights.reduce((sum, w) => sum + w, 0)
  const first = pickByWeight(weights, totalWeight, random)
  centroids.set(coords.subarray(first * dim, first * dim + dim), 0)
  const nearest = new Float64Array(n).fill(Infinity)
  const score = new Float64Array(n)
  for (let c = 1; c < k; c++) {
    let total = 0
    for (let i = 0; i < n; i++) {
      nearest[i] = Math.min(nearest[i] as number, squaredDistance(coords, i, centroids, c - 1, dim))
      score[i] = (weights[i] as number) * (nearest[i] as number)
      total += score[i] as number
    }
    // Fewer distinct points than k: any point will do, the cluster stays empty.
    const chosen = total > 0 ? pickByWeight(score, total, random) : pickByWeight(weights, totalWeight, random)
    centroids.set(coords.subarray(chosen * dim, chosen * dim + dim), c * dim)
  }
  return centroids
}

/** Lloyd iterations from k-means++ seeds; the best of `restarts` runs by inertia. */
export function kmeans(points: WeightedPoints, k: number, random: () => number, restarts = 4, maxIterations = 100): Clustering {
  let best: Clustering | undefined
  for (let run = 0; run < restarts; run++) {
    const result = lloyd(points, seedCentroids(points, k, random), k, maxIterations)
    if (!best || result.inertia < best.inertia) best = result
  }
  const chosen = best as Clustering
  chosen.silhouette = simplifiedSilhouette(points, chosen)
  return chosen
}

function lloyd(points: WeightedPoints, centroids: Float64Array, k: number, maxIterations: number): Clustering {
  const { dim, coords, weights } = points
  const n = size(points)
  const assignment = new Int32Array(n).fill(-1)
  const sums = new Float64Array(k * dim)
  const mass = new Float64Array(k)
  let inertia = 0
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    let changed = false
    inertia = 0
    for (let i = 0; i < n; i++) {
      let bestCluster = 0
      let bestDistance = Infinity
      for (let c = 0; c < k; c++) {
        const distance = squaredDistance(coords, i, centroids, c, dim)
        if (distance < bestDistance) (bestDistance = distance), (bestCluster = c)
      }
      if (assignment[i] !== bestCluster) (assignment[i] = bestCluster), (changed = true)
      inertia += (weights[i] as number) * bestDistance
    }
    if (!changed) break
    sums.fill(0)
    mass.fill(0)
    for (let i = 0; i < n; i++) {
      const c = assignment[i] as number
      const w = weights[i] as number
      mass[c] = (mass[c] as number) + w
      for (let d = 0; d < dim; d++) sums[c * dim + d] = (sums[c * dim + d] as number) + w * (coords[i * dim + d] as number)
    }
    // An emptied cluster keeps its centre.
    for (let c = 0; c < k; c++) {
      if ((mass[c] as number) > 0) for (let d = 0; d < dim; d++) centroids[c * dim + d] = (sums[c * dim + d] as number) / (mass[c] as number)
    }
  }
  return { k, centroids, assignment, inertia, silhouette: 0 }
}

/**
 * The simplified silhouette (Hruschka et al. 2004): for each point, a = the
 * distance to its centroid, b = the distance to the nearest other centroid,
 * s = (b - a) / max(a, b); weighted mean over points. O(n k) instead of the
 * full silhouette's O(n^2).
 */
export function simplifiedSilhouette(points: WeightedPoints, clustering: Clustering): number {
  const { dim, coords, weights } = points
  const { k, centroids, assignment } = clustering
  if (k < 2) return 0
  let sum = 0
  let total = 0
  for (let i = 0; i < size(points); i++) {
    const own = assignment[i] as number
    const a = Math.sqrt(squaredDistance(coords, i, centroids, own, dim))
    let b = Infinity
    for (let c = 0; c < k; c++) if (c !== own) b = Math.min(b, Math.sqrt(squaredDistance(coords, i, centroids, c, dim)))
    const spread = Math.max(a, b)
    sum += (weights[i] as number) * (spread > 0 ? (b - a) / spread : 0)
    total += weights[i] as number
  }
  return total > 0 ? sum / total : 0
}

export interface KChoice {
  best: Clustering
  tried: { k: number; silhouette: number; inertia: number }[]
}

/**
 * k from minK..maxK by the highest simplified silhouette (the smaller k on a
 * tie), one seeded generator for the whole search. Fewer distinct points than
 * minK: one cluster. `points` must not be empty.
 */
export function chooseK(points: WeightedPoints, seed: number, minK = 2, maxK = 6): KChoice {
  const random = seededRandom(seed)
  const n = size(points)
  if (n < minK) {
    const single = kmeans(points, 1, random, 1)
    return { best: single, tried: [{ k: single.k, silhouette: 0, inertia: single.inertia }] }
  }
  let best: Clustering | undefined
  const tried: KChoice['tried'] = []
  for (let k = minK; k <= Math.min(maxK, n); k++) {
    const result = kmeans(points, k, random)
    tried.push({ k, silhouette: result.silhouette, inertia: result.inertia })
    if (!best || result.silhouette > best.silhouette + 1e-9) best = result
  }
  return { best: best as Clustering, tried }
}
