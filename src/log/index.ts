export { createLogger, pinoLevel } from './logger.js';
export type { Logger } from './logger.js';
export { logDisposition, replyFields, peerFields } from './records.js';
export type { DispositionRecord, DispositionType } from './records.js';
