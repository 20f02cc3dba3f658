// Who may see or refresh whose analytics, and in which org (docs/analytics.md,
// "Access"). Analytics rows are per org; the org is the token's when it has
// one, else the user's own assignment's.
import { canAdministerOrg, canReadOrg, type Principal } from '../auth/principal.ts'
import type { Sql } from '../db/pool.ts'
import { Errors } from '../errors.ts'
import { isInOrg, orgOfUser } from './store.ts'
import type { AnalyticsRole, UserRoleKey } from './types.ts'

export type Purpose = 'read' | 'refresh'

/**
 * The user-role the principal asks about, or FORBIDDEN / NOT_FOUND:
 * - self: always (learner and instructor analytics); admin analytics only to
 *   an admin token, about its own org;
 * - someone else in the principal's org: to read, admin, instructor or service;
 *   to refresh, admin or service. Someone in no course of that org is 403.
 */
export async function resolveSubject(
  sql: Sql,
  principal: Principal,
  userId: string,
  role: AnalyticsRole,
  purpose: Purpose,
  orgHint?: string,
): Promise<UserRoleKey> {
  const self = principal.userId === userId
  if (orgHint !== undefined && principal.orgId !== undefined && orgHint !== principal.orgId) {
    throw new Errors.FORBIDDEN(`your token is for org ${principal.orgId}, not ${orgHint}`)
  }
  if (role === 'admin') {
    if (!self || principal.role !== 'admin' || !principal.orgId) {
      throw new Errors.FORBIDDEN('admin analytics are shown only to the admin themself, with an org in the token')
    }
    return { orgId: principal.orgId, userId, role }
  }
  if (self) {
    const orgId = principal.orgId ?? (await orgOfUser(sql, userId, role, orgHint))
    if (!orgId) throw new Errors.NOT_FOUND(`no assignment of user ${userId}${orgHint ? ` in org ${orgHint}` : ''}`)
    return { orgId, userId, role }
  }
  const orgId = principal.orgId
  const allowed = orgId !== undefined && (purpose === 'read' ? canReadOrg(principal, orgId) : canAdministerOrg(principal, orgId))
  if (!allowed) {
    throw new Errors.FORBIDDEN(
      purpose === 'read'
        ? 'only the user, or an admin or instructor of their org, may read these analytics'
        : 'only the user, or an admin of their org, may refresh these analytics',
    )
  }
  if (!(await isInOrg(sql, orgId, userId))) throw new Errors.FORBIDDEN(`user ${userId} is not in org ${orgId}`)
  return { orgId, userId, role }
}

/**
 * Jobs are shown to whoever asked for them, the user they are about, and
 * readers of that user's org. User ids are an org's own, so a token of another
 * org naming the same id is someone else.
 */
export function maySeeJob(principal: Principal, request: { requestedBy: string; orgId: string; userId: string }): boolean {
  const sameOrg = principal.orgId === undefined || principal.orgId === request.orgId
  return (sameOrg && (principal.userId === request.requestedBy || principal.userId === request.userId)) || canReadOrg(principal, request.orgId)
}
