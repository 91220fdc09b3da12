import { createPrivateKey, createPublicKey, generateKeyPair, KeyObject } from 'node:crypto';
import type { DkimAlgorithm } from '../config/index.js';

export interface KeygenRequest {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimAlgorithm;
  /** RSA modulus length; ignored for Ed25519. */
  readonly bits: number;
}

export interface GeneratedKey {
  /** The private key, PKCS#8 PEM (what dkim.ini `key=` names). */
  readonly privatePem: string;
  /** Where the public key is published (RFC 6376 §3.6.2.1). */
  readonly recordName: string;
  /** The TXT record's text (RFC 6376 §3.6.1; RFC 8463 §4 for Ed25519). */
  readonly recordValue: string;
}

/**
 * The key record for a private key: `k=rsa; p=` the SubjectPublicKeyInfo DER in base64
 * (RFC 6376 §3.6.1), or `k=ed25519; p=` the raw 32-byte public key in base64 (RFC 8463 §4).
 */
export function keyRecord(privateKey: KeyObject | string | Buffer): string {
  const key = privateKey instanceof KeyObject ? privateKey : createPrivateKey(privateKey);
  const pub = createPublicKey(key);
  if (key.asymmetricKeyType === 'ed25519') {
    // The JWK's x is the raw public key (RFC 8037 §2), base64url.
    const raw = Buffer.from(pub.export({ format: 'jwk' }).x as string, 'base64url');
    return `v=DKIM1; k=ed25519; p=${raw.toString('base64')}`;
  }
  if (key.asymmetricKeyType === 'rsa') return `v=DKIM1; k=rsa; p=${pub.export({ format: 'der', type: 'spki' }).toString('base64')}`;
  throw new Error(`no DKIM key record for a ${key.asymmetricKeyType} key`);
}

/** Generates a key pair off the event loop and says what to publish. */
export async function generateDkimKey(req: KeygenRequest): Promise<GeneratedKey> {
  const encoding = { privateKeyEncoding: { format: 'pem' as const, type: 'pkcs8' as const }, publicKeyEncoding: { format: 'pem' as const, type: 'spki' as const } };
  const privatePem = await new Promise<string>((resolve, reject) => {
    const done = (err: Error | null, _pub: string, priv: string) => (err ? reject(err) : resolve(priv));
    if (req.algorithm === 'ed25519-sha256') generateKeyPair('ed25519', encoding, done);
    else generateKeyPair('rsa', { modulusLength: req.bits, ...encoding }, done);
  });
  return {
    privatePem,
    recordName: `${req.selector}._domainkey.${req.domain}`,
    recordValue: keyRecord(privatePem),
  };
}

/**
 * The record as a zone file line: the value in quoted strings of at most 255 bytes
 * (RFC 1035 §3.3.14), which is how a 2048-bit RSA key has to be published.
 */
export function zoneLine(name: string, value: string): string {
  const parts: string[] = [];
  for (let at = 0; at < value.length; at += 255) parts.push(`"${value.slice(at, at + 255)}"`);
  return `${name}. IN TXT ( ${parts.join(' ')} )`;
}
