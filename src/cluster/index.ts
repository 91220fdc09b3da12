export type { ConnectionLease, DestinationLimits, LimitCoordinator, MessageRate, SlotAnswer, TokenAnswer } from './coordinator.js';
export { IpcCoordinator } from './ipc-coordinator.js';
export type { IpcCoordinatorOptions } from './ipc-coordinator.js';
export { CoordinatorHost } from './coordinator-host.js';
export { processChannel } from './ipc-messages.js';
export type { IpcChannel } from './ipc-messages.js';
export { rateShare, slotShare } from './local-share.js';
