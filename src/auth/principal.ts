// Who is calling, from a verified token's claims (contract section 3).
export const ROLES = ['learner', 'instructor', 'admin', 'service'] as const
export type Role = (typeof ROLES)[number]

export interface Principal {
  userId: string
  orgId?: string
  role: Role
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value)
}

/** May this principal read data of `orgId` (admin, instructor, service of that org)? */
export function canReadOrg(principal: Principal, orgId: string): boolean {
  return principal.role !== 'learner' && principal.orgId === orgId
}

/** May this principal administer `orgId` (admin or service of that org)? */
export function canAdministerOrg(principal: Principal, orgId: string): boolean {
  return (principal.role === 'admin' || principal.role === 'service') && principal.orgId === orgId
}
