export { createLogger, pinoLevel } from './logger.js';
export type { Logger } from './logger.js';
export { logRejection } from './records.js';
export type { DispositionRecord, DispositionType, RejectionRecord } from './records.js';
export { dispositionRecord } from './disposition-record.js';
export { DispositionSink } from './disposition-sink.js';
export type { DispositionListener } from './disposition-sink.js';
export { routeProcessWarnings } from './process-warnings.js';
export type { WarningRoute } from './process-warnings.js';
