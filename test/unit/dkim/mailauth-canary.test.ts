import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { KeyRing, MessageSigner } from '../../../src/dkim/index.js';
import type { DkimConfig, DkimSelectorConfig } from '../../../src/config/index.js';
import { makeDkimKey } from '../../helpers/dkim.js';

const require = createRequire(import.meta.url);
const { dkimSign } = require('mailauth/lib/dkim/sign') as {
  dkimSign(
    input: Buffer,
    options: { canonicalization: string; signTime: Date; headerList: string; signatureData: { signingDomain: string; selector: string; privateKey: string; algorithm: string }[] },
  ): Promise<{ signatures: string; errors: unknown[] }>;
};

const HEADERS = ['from', 'to', 'subject', 'date', 'message-id'];

function ring(algorithm: DkimSelectorConfig['algorithm'], canonicalization: DkimSelectorConfig['canonicalization'], pem: string, oversign: string[] = []): KeyRing {
  const section: DkimSelectorConfig = {
    section: 'canary.test',
    domain: 'canary.test',
    selector: 'c1',
    keyFile: 'k.pem',
    keyPath: '/k.pem',
    algorithm,
    headers: HEADERS,
    oversign,
    canonicalization,
    privateKey: Buffer.from(pem),
  };
  const config: DkimConfig = { sign_by: 'from', domains: new Map([['canary.test', [section]]]) };
  return new KeyRing(config);
}

const MESSAGE = Buffer.from(
  'Received: from client (x [127.0.0.1])\r\n\tby tern.test; Mon, 1 Dec 2026 00:00:00 +0000\r\n' +
    'From: Canary <bird@canary.test>\r\nTo:  someone@example.test \r\nSubject: the  canary\r\n  folded\r\nDate: Mon, 1 Dec 2026 00:00:00 +0000\r\nMessage-ID: <c@canary.test>\r\n' +
    '\r\n' +
    'First line  with  spaces \r\n.a dot line\r\n\r\nGrüße\r\n\r\n\r\n',
  'utf8',
);

async function ours(r: KeyRing, chunk: number, now: number): Promise<string> {
  const signer = new MessageSigner(r);
  for (let at = 0; at < MESSAGE.length; at += chunk) signer.write(MESSAGE.subarray(at, at + chunk));
  const out = await signer.finish('bird@canary.test', now);
  assert.deepEqual(out.problems, []);
  return out.prefix;
}

/**
 * Tern reaches into mailauth's internals (src/dkim/mailauth-adapter.ts) to make the
 * private-key operation off the event loop. This canary fails when a mailauth upgrade
 * changes them: Tern's signature must be byte for byte the one mailauth's own dkimSign()
 * makes (RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic), whatever the chunking.
 */
describe('mailauth internals (canary): Tern signs exactly as mailauth\'s dkimSign', () => {
  for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as const) {
    for (const canonicalization of ['relaxed/relaxed', 'simple/simple', 'relaxed/simple'] as const) {
      it(`${algorithm} ${canonicalization}`, async () => {
        const pem = makeDkimKey(algorithm, 1024);
        const now = Date.UTC(2026, 11, 1, 12, 0, 0);
        const expected = await dkimSign(MESSAGE, {
          canonicalization,
          signTime: new Date(now),
          headerList: HEADERS.join(':'),
          signatureData: [{ signingDomain: 'canary.test', selector: 'c1', privateKey: pem, algorithm }],
        });
        assert.deepEqual(expected.errors, []);
        const r = ring(algorithm, canonicalization, pem);
        for (const chunk of [1, 3, 17, 4096, MESSAGE.length]) assert.equal(await ours(r, chunk, now), expected.signatures, `chunks of ${chunk}`);
      });
    }
  }

  it('over-signing adds one h= entry per name and changes nothing else that is hashed', async () => {
    const pem = makeDkimKey('ed25519-sha256');
    const prefix = await ours(ring('ed25519-sha256', 'relaxed/relaxed', pem, ['from', 'reply-to']), 64, Date.UTC(2026, 0, 1));
    const h = /h=([^;]+);/.exec(prefix.replace(/\r\n\s+/g, ''))![1].split(':').map((s) => s.trim().toLowerCase());
    assert.deepEqual(h, ['message-id', 'date', 'subject', 'to', 'from', 'from', 'reply-to']);
  });
});
