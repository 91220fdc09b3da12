export { generateDsn } from './generate.js';
export type { DsnEvent, DsnKind, DsnMessage, DsnParams, DsnRecipient, OriginalMessage } from './types.js';
