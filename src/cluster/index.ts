export type { ConnectionLease, DestinationLimits, LimitCoordinator, MessageRate, SlotAnswer, TokenAnswer } from './coordinator.js';
export { LocalCoordinator } from './local-coordinator.js';
