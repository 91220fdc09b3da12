export type { ConnectionLease, DestinationLimits, LimitCoordinator, MessageRate, SlotAnswer, TokenAnswer } from './coordinator.js';
export { LocalCoordinator } from './local-coordinator.js';
export { DestinationKeys } from './destination-keys.js';
export type { DestinationKeyOptions, ShapedDestination } from './destination-keys.js';
