// Who asked for a job, for jobs whose data records it (learner erasure):
// GET /api/v1/jobs/:jobId shows such a job to its requester only.
import type { Principal } from '../auth/principal.ts'

export interface JobRequester {
  userId: string
  orgId?: string
  role: string
}

export function isRequester(data: object, principal: Principal): boolean {
  const requester = (data as { requestedBy?: Partial<JobRequester> }).requestedBy
  return typeof requester?.userId === 'string' && requester.userId === principal.userId && (requester.orgId ?? null) === (principal.orgId ?? null)
}
