export { AdminApi, MERGE_DEPTH } from './http-api.js';
export type { AdminApiOptions } from './http-api.js';
export { TernMetrics, entryState } from './metrics.js';
export type { EntryState } from './metrics.js';
export { ClusterAdminApi } from './cluster-admin.js';
export type { WorkerTarget } from './worker-client.js';
export { mergeExpositions } from './metrics-merge.js';
export { buildInfo } from './build-info.js';
