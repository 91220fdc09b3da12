export * from './reply.js';
export * from './reply-parser.js';
export * from './capabilities.js';
export * from './commands.js';
export * from './dot-stuff.js';
export * from './address.js';
export * from './date.js';
