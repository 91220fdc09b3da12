import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tempDir } from './temp-dir.js';
import { join } from 'node:path';

export interface TestCert {
  readonly key: Buffer;
  readonly cert: Buffer;
  readonly keyPath: string;
  readonly certPath: string;
}

/** A fresh self-signed certificate made with openssl at test time; nothing secret is committed. */
export function makeCert(commonName = 'mx.test', altNames: string[] = [commonName, 'localhost']): TestCert {
  const dir = tempDir('tern-cert-');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-keyout', keyPath, '-out', certPath,
    '-subj', `/CN=${commonName}`,
    '-addext', `subjectAltName=${altNames.map((n) => `DNS:${n}`).join(',')},IP:127.0.0.1`,
  ], { stdio: 'ignore' });
  return { key: readFileSync(keyPath), cert: readFileSync(certPath), keyPath, certPath };
}
