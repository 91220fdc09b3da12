import { createHash } from 'node:crypto';
import type { TernConfig } from './load.js';
import { rateText } from './limits.js';

/** One setting whose value a reload changed. Secrets are never shown. */
export interface KeyChange {
  readonly key: string;
  readonly was: unknown;
  readonly now: unknown;
}

/** What a reload changed in one file of the config directory. */
export interface FileChange {
  readonly file: string;
  /** The file was there at the previous load and is gone now: its settings are the defaults again. */
  readonly removed: boolean;
  readonly added: boolean;
  readonly keys: readonly KeyChange[];
}

const SECRET = /token|pass|hash|private/i;
/** A value as Tern may print it: secrets (tokens, passwords, hashes, private keys) never are. */
export const shownValue = (key: string, value: unknown): unknown => (value !== undefined && SECRET.test(key) ? '(secret)' : value);

/** Each file's settings as flat key → value, for comparison (and `tern config show`). */
export function settingsByFile(c: TernConfig): Record<string, Record<string, unknown>> {
  const flat = (obj: object, prefix = ''): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map)) Object.assign(out, flat(v, `${prefix}${k}.`));
      else out[`${prefix}${k}`] = v;
    }
    return out;
  };
  const { serverList: _servers, ...dns } = c.dns;
  const { reportingMta: _mta, ...dsn } = c.dsn;
  const rewriteCount = c.rewrite.global.length + [...c.rewrite.domains.values()].reduce((n, list) => n + list.length, 0);
  return {
    me: { me: c.me },
    'smtp.ini': flat(c.smtp),
    'outbound.ini': flat(c.outbound),
    'tls.ini': flat(c.tls),
    'dns.ini': flat(dns),
    'dsn.ini': flat(dsn),
    'http.ini': flat(c.http),
    'log.ini': flat(c.log),
    'routes.ini': Object.assign({}, ...[...c.routes].map(([domain, route]) => flat(route, `[${domain}].`))),
    'limits.ini': Object.assign({}, ...[...c.limits.sections].map(([name, section]) => flat({ ...section, max_message_rate: section.max_message_rate && rateText(section.max_message_rate) }, `[${name}].`))),
    relay_acl_allow: { relay_acl_allow: c.relayAllow },
    auth_users: { users: [...c.authUsers.keys()] },
    'rewrite_delivery_status.json': { rules: rewriteCount },
    'outbound.bounce_message': { template: c.bounceTemplate === undefined ? 'built-in' : 'from file' },
    // A renewed certificate is a change (it is served from the next STARTTLS on): its
    // fingerprint tells one from another without showing the key.
    'tls_cert.pem': { listener_tls: c.listenerTls !== undefined, sha256: fingerprint(c.listenerTls?.cert) },
    'tls_key.pem': { private_key: fingerprint(c.listenerTls?.key) },
    // A key file replaced under the same name is a change too (its fingerprint, never the key).
    'dkim.ini': Object.assign(
      { sign_by: c.dkim.sign_by },
      ...[...c.dkim.domains.values()].flat().map(({ privateKey, keyPath: _path, domain: _domain, section, keyFile, signingDomain, ...s }) =>
        flat({ ...s, key: keyFile, ...(signingDomain ? { domain: signingDomain } : {}), key_sha256: fingerprint(privateKey) }, `[${section}].`),
      ),
    ),
    'automation.ini': Object.assign(
      {},
      ...c.automation.rules.map((r) =>
        flat(
          {
            match: r.source,
            domains: r.domains,
            mx: r.mx,
            threshold: r.threshold,
            window: r.windowMs / 1000,
            action: r.action,
            duration: r.durationMs / 1000,
            max_connections: r.maxConnections,
            max_message_rate: r.maxMessageRate && rateText(r.maxMessageRate),
            reason: r.reason,
          },
          `[${r.name}].`,
        ),
      ),
    ),
    // A password inside the url is a secret like password= is.
    'redis.ini': flat({ ...c.redis, url: c.redis.url?.replace(/\/\/([^@/]*)@/, (_m, auth: string) => `//${auth.includes(':') ? `${auth.split(':')[0]}:(secret)` : '(secret)'}@`) }),
  };
}

const fingerprint = (pem: Buffer | undefined) => (pem ? createHash('sha256').update(pem).digest('hex').slice(0, 16) : null);

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * What changed between two loads, file by file: the keys whose values differ, and
 * whether the file appeared or went. A file that went silently reverts every key to its
 * default, which the operator must hear about (a deleted outbound.ini re-enables
 * delivery, for one); the caller logs that as a warning.
 */
export function configChanges(prev: TernConfig, next: TernConfig): FileChange[] {
  const before = settingsByFile(prev);
  const after = settingsByFile(next);
  const out: FileChange[] = [];
  for (const file of new Set([...Object.keys(after), ...prev.files, ...next.files])) {
    const a = before[file] ?? {};
    const b = after[file] ?? {};
    const keys: KeyChange[] = [];
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!same(a[key], b[key])) keys.push({ key, was: shownValue(key, a[key]), now: shownValue(key, b[key]) });
    }
    const had = prev.files.includes(file);
    const has = next.files.includes(file);
    if (keys.length || had !== has) out.push({ file, removed: had && !has, added: !had && has, keys });
  }
  return out;
}
