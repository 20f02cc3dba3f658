// Who may see or refresh whose analytics, and in which org (docs/analytics.md,
// "Access"). Analytics rows are per org; the org is the token's when it has
// one, else the user's own assignment's.
import { canAdministerOrg, canReadOrg, type Principal } from '../auth/principal.ts'
import type { Sql } from '../db/pool.ts'
import { Errors } from '../errors.ts'
import { assignmentOrg } from './store.ts'
import type { AnalyticsRole, UserRoleKey } from './types.ts'

export type Purpose = 'read' | 'refresh'

/**
 * The user-role the principal asks about, or FORBIDDEN / NOT_FOUND:
 * - self: learner and instructor analytics where the user has an assignment
 *   in that role (else 404: each stored row joins every daily batch); admin
 *   analytics only to an admin token, about its own org;
 * - someone else in the principal's org: to read, admin, instructor or service;
 *   to refresh, admin or service. Someone with no assignment in that role there is 403.
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
    const inOrg = principal.orgId ?? orgHint
    const orgId = await assignmentOrg(sql, userId, role, inOrg)
    if (!orgId) throw new Errors.NOT_FOUND(`no ${role} assignment of user ${userId}${inOrg ? ` in org ${inOrg}` : ''}`)
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
  if (!(await assignmentOrg(sql, userId, role, orgId))) throw new Errors.FORBIDDEN(`user ${userId} has no ${role} assignment in org ${orgId}`)
  return { orgId, userId, role }
}

/**
 * A refresh job is shown to whoever asked for it (contract section 6: "the
 * requester"). User ids are an org's own: the requester is that id with a
 * token of the job's org, or, for a user's own refresh, with a token of no org.
 */
export function isRefreshRequester(principal: Principal, request: { requestedBy: string; orgId: string; userId: string }): boolean {
  if (principal.userId !== request.requestedBy) return false
  return principal.orgId === undefined ? request.requestedBy === request.userId : principal.orgId === request.orgId
}
