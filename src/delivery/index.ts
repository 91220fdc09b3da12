export { DeliveryAgent } from './agent.js';
export type { AgentDeps } from './agent.js';
export { DeliverySession } from './session.js';
export type { SessionRequest, SessionRecipient, SessionResult, SessionTimeouts, TlsMode } from './session.js';
export type { SessionTracer } from './tracer.js';
