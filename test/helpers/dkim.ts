import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import type { TestDnsServer } from './dns-server.js';
import { REPO_ROOT } from './tern-process.js';

/** dkimpy's verdict on one DKIM-Signature field (test/helpers/dkim-verify.py). */
export interface DkimVerdict {
  d: string;
  s: string;
  a: string;
  c: string;
  h: string;
  ok: boolean;
  error: string | null;
}

/** Debian's python3-dkim runs on Debian's python, not on whatever python3 comes first in PATH. */
const PYTHON = '/usr/bin/python3';

/**
 * Verifies every signature of `message` with dkimpy, which looks the keys up at `dns`
 * (over real DNS, as any verifier does). One verdict per DKIM-Signature, top first.
 */
export function verifyDkim(message: Buffer, dns: TestDnsServer): Promise<DkimVerdict[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      PYTHON,
      [join(REPO_ROOT, 'test/helpers/dkim-verify.py'), dns.host, String(dns.port)],
      { maxBuffer: 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => (err ? reject(new Error(`dkim-verify.py: ${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as DkimVerdict[])),
    );
    child.stdin!.end(message);
  });
}

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** A new private key (PKCS#8 PEM) for `algorithm`. */
export function makeDkimKey(algorithm: DkimAlgorithm, bits = 2048): string {
  const pair =
    algorithm === 'rsa-sha256'
      ? generateKeyPairSync('rsa', { modulusLength: bits, privateKeyEncoding: { format: 'pem', type: 'pkcs8' }, publicKeyEncoding: { format: 'pem', type: 'spki' } })
      : generateKeyPairSync('ed25519', { privateKeyEncoding: { format: 'pem', type: 'pkcs8' }, publicKeyEncoding: { format: 'pem', type: 'spki' } });
  return pair.privateKey;
}

/**
 * Publishes the public half of `privatePem` at `<selector>._domainkey.<domain>` as RFC
 * 6376 §3.6.1 says (RFC 8463 §4 for Ed25519: the raw 32-byte key), written here apart
 * from Tern's keygen so that the tests check it against an independent reading.
 */
export function publishDkimKey(dns: TestDnsServer, domain: string, selector: string, privatePem: string): void {
  const pub = createPublicKey(privatePem);
  const spki = pub.export({ format: 'der', type: 'spki' });
  // An Ed25519 SubjectPublicKeyInfo is a 12-byte prefix and the 32-byte key (RFC 8410 §4).
  const value = pub.asymmetricKeyType === 'ed25519' ? `v=DKIM1; k=ed25519; p=${spki.subarray(12).toString('base64')}` : `v=DKIM1; k=rsa; p=${spki.toString('base64')}`;
  dns.add(`${selector}._domainkey.${domain}`, { type: 'TXT', data: value });
}

/** The header section of a message (up to the empty line), as text. */
export function headerSection(message: Buffer): string {
  const end = message.indexOf('\r\n\r\n');
  return message.subarray(0, end < 0 ? message.length : end + 2).toString('latin1');
}
