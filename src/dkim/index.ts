export { KeyRing } from './key-ring.js';
export type { SigningKey } from './key-ring.js';
export { MessageSigner, MAX_HEADER_SECTION } from './message-signer.js';
export type { MadeSignature, SignOutcome } from './message-signer.js';
export { generateDkimKey, keyRecord, zoneLine } from './keygen.js';
export type { GeneratedKey, KeygenRequest } from './keygen.js';
export { DkimSigningPool } from './signing-pool.js';
export type { BodySigner } from './signing-pool.js';
