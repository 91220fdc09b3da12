export * from './types.js';
export * from './disposition.js';
export * from './errors.js';
export * from './closable.js';
