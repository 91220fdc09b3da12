export { Listener } from './server.js';
export type { Injector } from './injector.js';
export { hashPassword, verifyPassword } from './auth.js';
export { splitEnvelope } from './envelope-split.js';
