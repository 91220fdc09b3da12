export { DnsResolver } from './resolver.js';
export type { DnsAnswer, DnsFailureReason, RecordType, ResolverOptions } from './resolver.js';
export { resolveMxPlan, hostAddresses } from './mx-plan.js';
export type { MxHost, MxPlan, MxPlanOptions } from './mx-plan.js';
export { isLocalAddress, inBlockList } from './address-policy.js';
export { confirmedClientName } from './client-name.js';
