export { Intake } from './intake.js';
export type { EntryTarget, Insertion, IntakeDeps, MessageIntake } from './intake.js';
export { splitEnvelope } from './envelope-split.js';
export { messageIdHeader, MESSAGE_ID_MAX } from './message-id.js';
