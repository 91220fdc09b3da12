export { createLogger, pinoLevel } from './logger.js';
export type { Logger } from './logger.js';
export { logDisposition, replyFields, peerFields } from './records.js';
export type { DispositionRecord, DispositionType } from './records.js';
export { routeProcessWarnings } from './process-warnings.js';
export type { WarningRoute } from './process-warnings.js';
