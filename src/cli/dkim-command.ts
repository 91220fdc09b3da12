import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { domainToASCII } from 'node:url';
import { generateDkimKey, zoneLine } from '../dkim/index.js';
import type { ConfigLocation } from './locations.js';

export interface DkimOptions {
  readonly config: ConfigLocation;
  readonly json: boolean;
  readonly domain?: string;
  readonly selector?: string;
  readonly algorithm?: string;
  readonly bits?: string;
  readonly out?: string;
  readonly force: boolean;
}

const USAGE = 'tern dkim keygen --domain D --selector S [--algorithm rsa-sha256|ed25519-sha256] [--bits 2048] [--out FILE] [--force]';

function fail(text: string): number {
  process.stderr.write(`tern: ${text}\nusage: ${USAGE}\n`);
  return 2;
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * `tern dkim keygen`: a private key for dkim.ini (mode 0600, never over an existing file
 * unless --force), the TXT record to publish, and the section to add.
 */
export async function dkimCommand(args: string[], o: DkimOptions): Promise<number> {
  if (args.length !== 1 || args[0] !== 'keygen') return fail(args.length ? `unknown dkim command '${args.join(' ')}'` : 'which dkim command?');
  const domain = o.domain ? domainToASCII(o.domain.toLowerCase().replace(/\.$/, '')) : '';
  if (!domain || !domain.split('.').every((l) => LABEL.test(l)) || !domain.includes('.')) return fail(`--domain ${JSON.stringify(o.domain ?? '')}: give the signing domain`);
  const selector = o.selector ?? '';
  if (!selector.split('.').every((l) => LABEL.test(l))) return fail(`--selector ${JSON.stringify(selector)}: give a selector (DNS labels)`);
  const algorithm = o.algorithm ?? 'rsa-sha256';
  if (algorithm !== 'rsa-sha256' && algorithm !== 'ed25519-sha256') return fail(`--algorithm ${JSON.stringify(algorithm)}: rsa-sha256 or ed25519-sha256`);
  const bits = o.bits === undefined ? 2048 : Number(o.bits);
  // RFC 8301 §3.2: at least 1024 bits, 2048 recommended; past 4096 a TXT record gets unwieldy.
  if (!Number.isInteger(bits) || bits < 1024 || bits > 4096) return fail(`--bits ${JSON.stringify(o.bits)}: 1024 to 4096`);
  if (o.bits !== undefined && algorithm !== 'rsa-sha256') return fail('--bits goes with rsa-sha256');

  const keyFile = o.out ?? join('dkim', `${domain}.${selector}.pem`);
  const path = isAbsolute(keyFile) ? keyFile : o.out !== undefined ? keyFile : join(o.config.dir, keyFile);
  const key = await generateDkimKey({ domain, selector, algorithm, bits });
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    // wx: an existing key is never overwritten by accident (its record may be published).
    writeFileSync(path, key.privatePem, { mode: 0o600, flag: o.force ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      process.stderr.write(`tern: ${path} exists; --force replaces it\n`);
      return 1;
    }
    throw err;
  }
  // dkim.ini names keys relative to the config directory when they are inside it.
  const rel = relative(o.config.dir, path);
  const iniKey = !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
  const section = `[${domain}]\nselector=${selector}\nkey=${iniKey}\nalgorithm=${algorithm}\n`;
  if (o.json) {
    process.stdout.write(JSON.stringify({ key_file: path, record: { name: key.recordName, type: 'TXT', value: key.recordValue }, dkim_ini: section }) + '\n');
    return 0;
  }
  process.stdout.write(
    `wrote ${path} (mode 0600)\n\n` +
      `Publish this DNS TXT record:\n  name:  ${key.recordName}\n  value: ${key.recordValue}\n\n` +
      `As a zone file line:\n  ${zoneLine(key.recordName, key.recordValue)}\n\n` +
      `Add to config/dkim.ini (a second selector of a domain goes in [${domain}/label]):\n${section}`,
  );
  return 0;
}
