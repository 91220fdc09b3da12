export { Listener } from './server.js';
export type { ClientNameLookup, ListenerOptions } from './server.js';
export type { ReplyEvent } from './smtp-server-adapter.js';
export type { Injector } from './injector.js';
export { hashPassword, verifyPassword } from './auth.js';
export { splitEnvelope } from './envelope-split.js';
export { REJECTION_REASONS } from './rejections.js';
export type { RejectionReason } from './rejections.js';
