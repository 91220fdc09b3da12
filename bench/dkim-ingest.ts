import { generateKeyPairSync } from 'node:crypto';
import type { World } from '../test/helpers/world.js';
import type { LoadShape } from './load-generator.js';
import { startTern } from './systems.js';
import { ingest } from './throughput.js';
import type { Variant } from './throughput.js';

export type Signing = 'off' | 'rsa-sha256' | 'ed25519-sha256';
const SIGNINGS: readonly Signing[] = ['off', 'rsa-sha256', 'ed25519-sha256'];

/** A dkim.ini (and its key) that signs the bench's mail (From: bench@client.test). */
function dkimFiles(signing: Signing): Record<string, string> {
  if (signing === 'off') return {};
  const key =
    signing === 'rsa-sha256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { format: 'pem', type: 'pkcs8' }, publicKeyEncoding: { format: 'pem', type: 'spki' } }).privateKey
      : generateKeyPairSync('ed25519', { privateKeyEncoding: { format: 'pem', type: 'pkcs8' }, publicKeyEncoding: { format: 'pem', type: 'spki' } }).privateKey;
  return { 'bench.pem': key, 'dkim.ini': `[client.test]\nselector=bench\nkey=bench.pem\nalgorithm=${signing}\n` };
}

const round = (x: number, digits = 1) => +x.toFixed(digits);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Tern's ingest with DKIM signing off, with RSA-2048 and with Ed25519, for each size,
 * in alternating rounds (off, rsa, ed, off, rsa, ed, …) so that a moment of load from
 * elsewhere on the machine falls on all three, not on one. One line per run, then per
 * size the median of each and its ratio to unsigned.
 */
export async function dkimIngest(world: World, shape: LoadShape, sizes: readonly number[], rounds: number, v: Variant, print: (r: Record<string, unknown>) => void): Promise<void> {
  for (const size of sizes) {
    const rates = new Map<Signing, number[]>(SIGNINGS.map((s) => [s, []]));
    const cpu = new Map<Signing, number[]>(SIGNINGS.map((s) => [s, []]));
    for (let r = 1; r <= rounds; r++) {
      for (const signing of SIGNINGS) {
        const res = await ingest((mode) => startTern(world, mode, 1, dkimFiles(signing)), { ...shape, size }, v);
        rates.get(signing)!.push(res.msgs_per_s as number);
        cpu.get(signing)!.push(res.cpu_s_per_1000 as number);
        print({ ...res, scenario: 'dkim-ingest', signing, round: r });
      }
    }
    const off = median(rates.get('off')!);
    for (const signing of SIGNINGS) {
      print({
        scenario: 'dkim-ingest summary', signing, size, rounds,
        median_msgs_per_s: median(rates.get(signing)!),
        median_cpu_s_per_1000: median(cpu.get(signing)!),
        of_unsigned: round(median(rates.get(signing)!) / off, 3),
      });
    }
  }
}
