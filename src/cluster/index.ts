export type { ConnectionLease, DestinationLimits, LimitCoordinator, MessageRate, SlotAnswer, TokenAnswer } from './coordinator.js';
