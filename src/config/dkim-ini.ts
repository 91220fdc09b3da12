import { createPrivateKey, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../core/index.js';
import { domainSections } from './ini-sections.js';

const FILE = 'dkim.ini';

/**
 * The header fields signed unless a section says otherwise: those a recipient sees and a
 * replay would want to change (RFC 6376 §5.4.1), never trace fields (Received:), which
 * every hop adds. The list is in the order of §5.4.1's recommendation.
 */
export const DEFAULT_DKIM_HEADERS = [
  'from', 'reply-to', 'sender', 'subject', 'date', 'message-id', 'to', 'cc', 'mime-version',
  'content-type', 'content-transfer-encoding', 'content-id', 'content-description', 'in-reply-to', 'references',
  'list-id', 'list-help', 'list-unsubscribe', 'list-unsubscribe-post', 'list-subscribe', 'list-post', 'list-owner', 'list-archive',
] as const;

const fieldName = /^[\x21-\x39\x3b-\x7e]+$/; // RFC 5322 §3.6.8 ftext
const nameList = (fallback: readonly string[]) =>
  z
    .string()
    .transform((v) => v.split(':').map((h) => h.trim().toLowerCase()).filter(Boolean))
    .refine((list) => list.every((h) => fieldName.test(h)), { message: 'expected header field names separated by colons' })
    .default(fallback.join(':'));

// RFC 6376 §3.1: a selector is one or more DNS labels.
const label = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const selectorPattern = new RegExp(`^${label}(?:\\.${label})*$`);
const domainPattern = new RegExp(`^${label}(?:\\.${label})+$`);

/** One `[domain]` or `[domain/label]` section of dkim.ini. */
export const dkimSectionSchema = z
  .object({
    selector: z.string().regex(selectorPattern, 'expected a DNS label (or several, separated by dots)'),
    key: z.string().min(1),
    algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']).default('rsa-sha256'),
    headers: nameList(DEFAULT_DKIM_HEADERS),
    // Each name here goes into h= once more than the message has it, so that no such field
    // can be added after signing without breaking the signature (RFC 6376 §8.15).
    oversign: nameList(['from']),
    canonicalization: z.enum(['relaxed/relaxed', 'relaxed/simple', 'simple/relaxed', 'simple/simple']).default('relaxed/relaxed'),
    // d= when it is not the section's domain (a `[*]` section signs as the message's domain).
    domain: z.string().toLowerCase().regex(domainPattern, 'expected a domain name').optional(),
  })
  .strict();

/** dkim.ini `[main]`: which domain picks the key. */
export const dkimMainSchema = z
  .object({
    // from: the RFC 5322 From: domain (what DMARC aligns with); envelope: the MAIL FROM domain.
    sign_by: z.enum(['from', 'envelope']).default('from'),
  })
  .strict();

export type DkimMain = z.infer<typeof dkimMainSchema>;
export type DkimAlgorithm = z.infer<typeof dkimSectionSchema>['algorithm'];

/** One selector to sign with: a section of dkim.ini with its key read and checked. */
export interface DkimSelectorConfig {
  /** The section's name as written (`example.com`, `example.com/ed`, `*`). */
  readonly section: string;
  /** The domain the section is for (lower case), or `*`. */
  readonly domain: string;
  /** d= when set; otherwise the section's domain (for `*`: the message's). */
  readonly signingDomain?: string;
  readonly selector: string;
  /** The key file as written in dkim.ini, and where it was read from. */
  readonly keyFile: string;
  readonly keyPath: string;
  readonly algorithm: DkimAlgorithm;
  readonly headers: readonly string[];
  readonly oversign: readonly string[];
  readonly canonicalization: z.infer<typeof dkimSectionSchema>['canonicalization'];
  /** The private key, as read (PEM). */
  readonly privateKey: Buffer;
}

export interface DkimConfig extends DkimMain {
  /** Selectors by section domain (lower case, `*` for the default), in file order. */
  readonly domains: ReadonlyMap<string, readonly DkimSelectorConfig[]>;
}

/** The first 16 hex digits of a key file's SHA-256: tells a rotated key from the old one without showing it. */
export const keyFingerprint = (pem: Buffer) => createHash('sha256').update(pem).digest('hex').slice(0, 16);

/**
 * Reads a key file and checks that it is a private key of the section's algorithm:
 * the daemon must not find out at the first message that it cannot sign.
 */
function readKey(dir: string, section: string, keyFile: string, algorithm: DkimAlgorithm): { keyPath: string; privateKey: Buffer } {
  const keyPath = isAbsolute(keyFile) ? keyFile : join(dir, keyFile);
  const fail = (problem: string) => new ConfigError(FILE, `[${section}] key`, keyFile, `${keyPath}: ${problem}`);
  let privateKey: Buffer;
  try {
    privateKey = readFileSync(keyPath);
  } catch (err) {
    throw fail(`cannot read the key file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let type: string | undefined;
  let bits: number | undefined;
  try {
    const key = createPrivateKey(privateKey);
    type = key.asymmetricKeyType;
    bits = key.asymmetricKeyDetails?.modulusLength;
  } catch (err) {
    throw fail(`not a private key in PEM (${(err as Error).message})`);
  }
  const wanted = algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
  if (type !== wanted) throw fail(`an ${type} key, where algorithm=${algorithm} needs an ${wanted} key`);
  // RFC 8301 §3.2: verifiers need not accept RSA keys under 1024 bits.
  if (type === 'rsa' && bits !== undefined && bits < 1024) throw fail(`an RSA key of ${bits} bits; RFC 8301 requires at least 1024 (2048 recommended)`);
  return { keyPath, privateKey };
}


function validated<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, section: string, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.join('.');
  const value = (body as Record<string, unknown>)[key];
  throw new ConfigError(FILE, `[${section}] ${key}`, value, issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message);
}

/** config/dkim.ini, with every key file read and checked; absent: nothing is signed. */
export function parseDkim(raw: string | undefined, dir: string): DkimConfig {
  const domains = new Map<string, DkimSelectorConfig[]>();
  let main: DkimMain = dkimMainSchema.parse({});
  if (raw === undefined) return { ...main, domains };
  const seen = new Set<string>();
  for (const [name, body] of domainSections(FILE, raw, '[main], a [domain] or [*] section')) {
    if (name === 'main') {
      main = validated(dkimMainSchema, name, body);
      continue;
    }
    const [domainPart, labelPart, ...more] = name.split('/');
    const domain = domainPart.toLowerCase();
    if (more.length || (domain !== '*' && !domainPattern.test(domain)) || (labelPart !== undefined && !/^[A-Za-z0-9_-]+$/.test(labelPart))) {
      throw new ConfigError(FILE, `[${name}]`, name, 'expected [domain], [domain/label] or [*] (label: letters, digits, - and _)');
    }
    const s = validated(dkimSectionSchema, name, body);
    const id = `${domain}\u0000${(s.domain ?? domain).toLowerCase()}\u0000${s.selector.toLowerCase()}`;
    if (seen.has(id)) throw new ConfigError(FILE, `[${name}] selector`, s.selector, 'another section of this domain signs with the same selector');
    seen.add(id);
    const { keyPath, privateKey } = readKey(dir, name, s.key, s.algorithm);
    const list = domains.get(domain) ?? [];
    list.push({
      section: name,
      domain,
      ...(s.domain ? { signingDomain: s.domain } : {}),
      selector: s.selector,
      keyFile: s.key,
      keyPath,
      algorithm: s.algorithm,
      headers: s.headers,
      oversign: s.oversign,
      canonicalization: s.canonicalization,
      privateKey,
    });
    domains.set(domain, list);
  }
  return { ...main, domains };
}
