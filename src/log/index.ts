export { createLogger, pinoLevel } from './logger.js';
export type { Logger } from './logger.js';
export { logDisposition, logRejection, replyFields, peerFields } from './records.js';
export type { DispositionRecord, DispositionType, RejectionRecord } from './records.js';
export { routeProcessWarnings } from './process-warnings.js';
export type { WarningRoute } from './process-warnings.js';
export { LogOutput } from './log-output.js';
export type { LogFormat } from './log-output.js';
