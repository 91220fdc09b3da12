export { Listener } from './server.js';
export type { ClientNameLookup, ListenerOptions } from './server.js';
export type { ReplyEvent } from './smtp-server-adapter.js';
export { hashPassword, verifyPassword } from './auth.js';
