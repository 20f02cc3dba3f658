// Types for activity.js (plain JavaScript so that k6 can load it too).
export declare const LESSONS_PER_COURSE: number
export declare const DEMO_ORG: string
export declare function slot(iteration: number, learners: number): { learner: number; round: number }
export declare function progressEventsJson(learner: number, round: number, eventsPerBatch: number, courses: number, now?: number): string
export declare function progressBatch(learner: number, round: number, eventsPerBatch: number, courses: number, now?: number): Record<string, unknown>[]
export declare function analyticsBatch(learner: number, round: number, eventsPerBatch: number, courses: number, now?: number): Record<string, unknown>[]
