export { Listener } from './server.js';
export type { ClientNameLookup, ListenerOptions } from './server.js';
export type { ReplyEvent } from './smtp-server-adapter.js';
export { hashPassword, verifyPassword } from './auth.js';
export { REJECTION_REASONS } from './rejections.js';
export type { RejectionReason } from './rejections.js';
