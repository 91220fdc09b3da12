export * from './reply.js';
export * from './address.js';
export * from './date.js';
