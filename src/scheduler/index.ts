export { Scheduler, QueueAdminError } from './scheduler.js';
export type { Deliverer, SchedulerEvents } from './scheduler.js';
export { RetrySchedule } from './retry-schedule.js';
export { TimerHeap } from './timer-heap.js';
export { applyOutcome, expireEntry } from './apply-outcome.js';
export type { Reporter } from './settle.js';
