export { startDaemon } from './start.js';
export type { DaemonOptions, RunningDaemon } from './start.js';
export { runShutdownSteps, closeWithin } from './lifecycle.js';
export type { ShutdownStep } from './lifecycle.js';
export { checkStartup, loadStartup } from './startup.js';
export type { Startup } from './startup.js';
