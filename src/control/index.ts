export { AdminApi } from './http-api.js';
export { TernMetrics, entryState } from './metrics.js';
export type { EntryState } from './metrics.js';
