import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import type { DkimConfig, DkimSelectorConfig } from '../src/config/index.js';
import { DkimSigningPool, KeyRing, MessageSigner } from '../src/dkim/index.js';
import { bodyHasher, parseHeaderFields, prepareSignature } from '../src/dkim/mailauth-adapter.js';
import { messageBody } from './load-generator.js';

/**
 * The DKIM signer alone, without SMTP or spool: CPU per message (the whole process, so
 * the signing workers count too) of signing N messages of S bytes in-process through
 * MessageSigner, through the worker pool, and of each step on its own.
 *   node dist/bench/dkim-signer.js [messages=3000] [size=4096]
 */
const N = Number(process.argv[2] ?? 3000);
const SIZE = Number(process.argv[3] ?? 4096);

function config(algorithm: 'rsa-sha256' | 'ed25519-sha256'): DkimConfig {
  const pem =
    algorithm === 'rsa-sha256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { format: 'pem', type: 'pkcs8' }, publicKeyEncoding: { format: 'pem', type: 'spki' } }).privateKey
      : generateKeyPairSync('ed25519', { privateKeyEncoding: { format: 'pem', type: 'pkcs8' }, publicKeyEncoding: { format: 'pem', type: 'spki' } }).privateKey;
  const section: DkimSelectorConfig = {
    section: 'client.test', domain: 'client.test', selector: 'bench', keyFile: 'bench.pem', keyPath: '/dev/null',
    algorithm, headers: ['from', 'to', 'subject', 'date', 'message-id'], oversign: ['from'], canonicalization: 'relaxed/relaxed',
    privateKey: Buffer.from(pem),
  };
  return { sign_by: 'from', domains: new Map([['client.test', [section]]]) } as unknown as DkimConfig;
}

const messages = Array.from({ length: Math.min(N, 200) }, (_, i) =>
  Buffer.from(`Received: from client (client [127.0.0.1]) by tern with ESMTP id ${i}; Wed, 2 Dec 2026 02:00:00 +0000\r\n${messageBody(i, SIZE)}`),
);
const msg = (i: number) => messages[i % messages.length];

/** CPU µs per message of `run` over N messages (after a warm-up of N/10). */
async function cpuPer(run: (i: number) => unknown | Promise<unknown>): Promise<number> {
  for (let i = 0; i < N / 10; i++) await run(i);
  const t0 = process.cpuUsage();
  for (let i = 0; i < N; i++) await run(i);
  const t = process.cpuUsage(t0);
  return Math.round((t.user + t.system) / N);
}

/** As cpuPer, but 16 messages in flight (the bench's 16 sessions). */
async function cpuPerConcurrent(run: (i: number) => Promise<unknown>): Promise<{ cpu: number; wall: number }> {
  const go = async () => {
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < N) await run(next++);
    }));
  };
  await go();
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  await go();
  const t = process.cpuUsage(t0);
  return { cpu: Math.round((t.user + t.system) / N), wall: Math.round(((performance.now() - w0) * 1000) / N) };
}

for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as const) {
  const cfg = config(algorithm);
  const ring = new KeyRing(cfg);
  const key = ring.keysFor('client.test')[0];
  const out: Record<string, unknown> = { algorithm, size: SIZE, messages: N };
  const split = (b: Buffer) => b.indexOf('\r\n\r\n');
  const fields = parseHeaderFields(msg(0).subarray(0, split(msg(0)) + 2));
  const bh = 'x'.repeat(44);
  out.us_parse_headers = await cpuPer((i) => parseHeaderFields(msg(i).subarray(0, split(msg(i)) + 2)));
  out.us_body_hash = await cpuPer((i) => {
    const h = bodyHasher('relaxed');
    h.update(msg(i).subarray(split(msg(i)) + 4));
    return h.digest();
  });
  const prep = () => prepareSignature({ fields, headers: key.headers, oversign: key.oversign, domain: 'client.test', selector: 'bench', algorithm, canonicalization: 'relaxed/relaxed', bodyHash: bh, signTime: new Date() });
  out.us_prepare_header = await cpuPer(() => prep());
  const data = prep().data;
  out.us_key_op = await cpuPer(() =>
    algorithm === 'ed25519-sha256' ? sign(null, createHash('sha256').update(data).digest(), key.key) : sign('sha256', data, key.key),
  );
  out.us_message_signer = await cpuPer(async (i) => {
    const s = new MessageSigner(ring);
    s.write(msg(i));
    return s.finish('bench@client.test', Date.now());
  });
  // As the intake hands it over: the Received: field, then the client's data a line at a time.
  const lines = messages.map((m) => {
    const out: Buffer[] = [];
    for (let at = 0; at < m.length; ) {
      const eol = m.indexOf('\n', at);
      const end = eol === -1 ? m.length : eol + 1;
      out.push(m.subarray(at, end));
      at = end;
    }
    return out;
  });
  out.us_message_signer_by_line = await cpuPer(async (i) => {
    const s = new MessageSigner(ring);
    for (const l of lines[i % lines.length]) s.write(l);
    return s.finish('bench@client.test', Date.now());
  });
  const pool = new DkimSigningPool(cfg);
  const viaPool = await cpuPerConcurrent(async (i) => {
    const s = pool.start()!;
    s.write(msg(i));
    return s.finish('bench@client.test', Date.now());
  });
  out.us_pool_cpu = viaPool.cpu;
  out.us_pool_wall = viaPool.wall;
  await pool.close();
  console.log(JSON.stringify(out));
}
