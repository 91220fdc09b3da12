import { readFileSync, existsSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { parse as parseIni } from 'ini';
import type { ZodType, ZodError } from 'zod';
import { ConfigError } from '../core/index.js';
import { domainSections } from './ini-sections.js';
import { dnsMainSchema, dsnMainSchema, httpMainSchema, logMainSchema, outboundSchema, routeSchema, smtpMainSchema, tlsSchema } from './schemas.js';
import type { DnsMain, DsnMain, HttpMain, LogMain, OutboundConfig, Route, SmtpMain, TlsConfig, TlsMode } from './schemas.js';
import { parseRewriteRules, REWRITE_FILE } from './rewrite-rules.js';
import { parseHostPort, splitHostPort } from './host-port.js';
import type { RewriteRules } from './rewrite-rules.js';
import { LIMITS_FILE, parseLimits } from './limits.js';
import { AUTOMATION_FILE, parseAutomation } from './automation-ini.js';
import type { AutomationConfig } from './automation-ini.js';
import { REDIS_FILE, checkRedisSettings, redisMainSchema } from './redis-ini.js';
import type { RedisSettings } from './redis-ini.js';
import type { LimitsConfig } from './limits.js';
import { parseDkim } from './dkim-ini.js';
import type { DkimConfig } from './dkim-ini.js';

export interface AuthUser {
  readonly username: string;
  /** `scrypt$<salt base64>$<key base64>`; see README "Authenticated relay". */
  readonly hash: string;
}

export interface DnsServer {
  readonly host: string;
  readonly port: number;
}

/** The whole configuration, validated and frozen; a reload builds a new one. */
export interface TernConfig {
  readonly dir: string;
  /** The files of CONFIG_FILES that were there when this config was loaded. */
  readonly files: readonly string[];
  readonly me: string;
  readonly smtp: SmtpMain;
  readonly relayAllow: readonly string[];
  readonly authUsers: ReadonlyMap<string, AuthUser>;
  readonly outbound: OutboundConfig;
  readonly tls: TlsConfig;
  readonly dns: DnsMain & { readonly serverList: readonly DnsServer[] };
  readonly rewrite: RewriteRules;
  readonly dsn: DsnMain & { readonly reportingMta: { readonly type: string; readonly name: string } };
  readonly http: HttpMain;
  readonly log: LogMain;
  /** config/routes.ini by destination domain (lower case) and `*`. */
  readonly routes: ReadonlyMap<string, Route>;
  /** config/limits.ini: traffic shaping per destination (sections by lower-case name). */
  readonly limits: LimitsConfig;
  /** The TLS mode for destinations without a route of their own. */
  readonly defaultTlsMode: TlsMode;
  /** Trust anchors from tls.ini [outbound] ca, for tls=verify. */
  readonly outboundCa?: Buffer;
  /** config/outbound.bounce_message: Haraka's template for the human-readable part of a report. */
  readonly bounceTemplate?: string;
  /** The listener's certificate, when config/tls_key.pem and config/tls_cert.pem exist. */
  readonly listenerTls?: { readonly key: Buffer; readonly cert: Buffer };
  /** config/dkim.ini with its keys read and checked; no sections: nothing is signed. */
  readonly dkim: DkimConfig;
  /** config/redis.ini `[main]`: limits, suspensions and automation shared by several nodes (off unless enabled). */
  readonly redis: RedisSettings;
  /** config/automation.ini: rules that suspend or slow a destination on its replies (none without the file). */
  readonly automation: AutomationConfig;
}

/** Every file Tern reads from the config directory (plugins/ is read once, at start). */
export const CONFIG_FILES = [
  'me', 'smtp.ini', 'outbound.ini', 'tls.ini', 'dns.ini', 'dsn.ini', 'http.ini', 'log.ini', 'routes.ini',
  'relay_acl_allow', 'auth_users', REWRITE_FILE, 'outbound.bounce_message', 'tls_key.pem', 'tls_cert.pem', LIMITS_FILE, 'dkim.ini', REDIS_FILE, AUTOMATION_FILE,
] as const;

/** The files a config is built from: a directory, or none at all (the built-in defaults). */
interface ConfigSource {
  has(name: string): boolean;
  read(name: string): Buffer | undefined;
}

function directory(dir: string): ConfigSource {
  return {
    has: (name) => existsSync(join(dir, name)),
    read: (name) => (existsSync(join(dir, name)) ? readFileSync(join(dir, name)) : undefined),
  };
}

const NO_FILES: ConfigSource = { has: () => false, read: () => undefined };

function toConfigError(file: string, issue: ZodError['issues'][number], input: unknown): ConfigError {
  const key = issue.path.join('.') || '(file)';
  let value: unknown = input;
  for (const p of issue.path) value = (value as Record<string, unknown> | undefined)?.[p as string];
  if (issue.code === 'unrecognized_keys') {
    return new ConfigError(file, issue.keys[0], (value as Record<string, unknown>)?.[issue.keys[0]], `unknown key(s) ${issue.keys.join(', ')}`);
  }
  return new ConfigError(file, key, value, issue.message);
}

/** Validates one file's settings; the error thrown is the first problem and carries the rest. */
function validate<T>(file: string, schema: ZodType<T, any, any>, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const [first, ...rest] = (result.error as ZodError).issues.map((issue) => toConfigError(file, issue, input));
  throw Object.assign(first, { others: rest });
}

/** Reads an ini file whose keys may sit at the top or under `[main]` (Haraka accepts both). */
function iniMain(source: ConfigSource, file: string): Record<string, unknown> {
  const raw = source.read(file)?.toString('utf8');
  if (raw === undefined) return {};
  const parsed = parseIni(raw) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (k === 'main' && v && typeof v === 'object') Object.assign(out, v);
    else if (v && typeof v === 'object') throw new ConfigError(file, `[${k}]`, k, 'unknown section');
    else out[k] = v;
  }
  return out;
}

function lines(raw: string | undefined): { line: string; n: number }[] {
  if (raw === undefined) return [];
  return raw
    .split(/\r?\n/)
    .map((line, i) => ({ line: line.replace(/#.*$/, '').trim(), n: i + 1 }))
    .filter((l) => l.line.length > 0);
}

function parseRelayAllow(raw: string | undefined): string[] {
  if (raw === undefined) return ['127.0.0.0/8', '::1/128'];
  const out: string[] = [];
  for (const { line, n } of lines(raw)) {
    const [net, prefix] = line.split('/');
    const family = isIP(net);
    const max = family === 6 ? 128 : 32;
    const bits = prefix === undefined ? max : Number(prefix);
    if (!family || !Number.isInteger(bits) || bits < 0 || bits > max || (prefix !== undefined && !/^\d+$/.test(prefix))) {
      throw new ConfigError('relay_acl_allow', `line ${n}`, line, 'expected an IPv4 or IPv6 address or CIDR');
    }
    out.push(`${net}/${bits}`);
  }
  return out;
}

function parseAuthUsers(raw: string | undefined): Map<string, AuthUser> {
  const users = new Map<string, AuthUser>();
  for (const { line, n } of lines(raw)) {
    const idx = line.indexOf(':');
    const username = idx > 0 ? line.slice(0, idx) : '';
    const hash = idx > 0 ? line.slice(idx + 1) : '';
    if (!username || !/^scrypt\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/.test(hash)) {
      throw new ConfigError('auth_users', `line ${n}`, username || line, 'expected user:scrypt$<salt>$<hash> (make one with `tern hash-password`)');
    }
    users.set(username, { username, hash });
  }
  return users;
}

function parseServers(spec: string | undefined): DnsServer[] {
  let hosts: string[];
  if (spec && spec.trim()) {
    hosts = spec.split(',').map((s) => s.trim()).filter(Boolean);
  } else {
    const resolv = existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf', 'utf8') : '';
    hosts = lines(resolv)
      .map((l) => /^nameserver\s+(\S+)/.exec(l.line)?.[1])
      .filter((h): h is string => !!h);
    if (hosts.length === 0) hosts = ['127.0.0.1'];
  }
  return hosts.map((h) => {
    // A bare address (IPv6 ones too) is port 53.
    const { host, port } = isIP(h) ? { host: h, port: 53 } : (parseHostPort(h) ?? { host: h, port: 53 });
    if (!isIP(host) || port < 1 || port > 65535) throw new ConfigError('dns.ini', 'servers', h, 'expected an IP address with an optional :port');
    return { host, port };
  });
}

function parseRoutes(raw: string | undefined): Map<string, Route> {
  const routes = new Map<string, Route>();
  if (raw === undefined) return routes;
  const sections = domainSections('routes.ini', raw, 'a [domain] or [*] section');
  for (const [section, body] of sections) {
    let route: Route;
    try {
      route = validate('routes.ini', routeSchema, body);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      throw new ConfigError('routes.ini', `[${section}] ${err.key}`, err.value, err.problem);
    }
    if (route.auth_user && !route.host) throw new ConfigError('routes.ini', `${section}.auth_user`, route.auth_user, 'AUTH needs a host (a smart host)');
    routes.set(section.toLowerCase(), route);
  }
  return routes;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value) && !Buffer.isBuffer(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Loads and validates every file of the config directory; throws ConfigError on the first problem. */
export function loadConfig(dir: string): TernConfig {
  return build(dir, directory(dir));
}

/** Validates every file and returns every problem found (`tern config check`), not just the first. */
export function checkConfig(dir: string): ConfigError[] {
  return collectConfig(dir).problems;
}

/**
 * Every problem of every file, and the config they leave (each broken file's defaults
 * standing in): what `tern config check` reports, where `tern start` stops at the first.
 */
export function collectConfig(dir: string): { config: TernConfig; problems: ConfigError[] } {
  const problems: ConfigError[] = [];
  if (!existsSync(dir)) problems.push(new ConfigError(dir, '(directory)', dir, 'does not exist'));
  const config = build(dir, directory(dir), problems);
  return { config, problems };
}

/** The configuration without any file: each setting's built-in default (`tern config show -n` compares with it). */
export function defaultConfig(): TernConfig {
  return build('(defaults)', NO_FILES);
}

function build(dir: string, source: ConfigSource, problems?: ConfigError[]): TernConfig {
  const text = (name: string) => source.read(name)?.toString('utf8');
  // With a problem list, each file's failure is recorded and its defaults stand in, so that
  // one run reports everything that is wrong.
  const step = <T>(fn: () => T, fallback: () => T): T => {
    if (!problems) return fn();
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err, ...((err as ConfigError & { others?: ConfigError[] }).others ?? []));
      return fallback();
    }
  };
  // A container's host name is its id: TERN_ME names the MTA where no config/me file does.
  const me = (text('me') ?? (process.env.TERN_ME || undefined) ?? hostname()).trim().split(/\s+/)[0] || hostname();
  const smtp = step(() => validate('smtp.ini', smtpMainSchema, iniMain(source, 'smtp.ini')), () => smtpMainSchema.parse({}));
  const outbound = step(() => validate('outbound.ini', outboundSchema, iniMain(source, 'outbound.ini')), () => outboundSchema.parse({}));
  const tlsRaw = text('tls.ini');
  const tls = step(() => validate('tls.ini', tlsSchema, tlsRaw === undefined ? {} : parseIni(tlsRaw)), () => tlsSchema.parse({}));
  const dnsMain = step(() => validate('dns.ini', dnsMainSchema, iniMain(source, 'dns.ini')), () => dnsMainSchema.parse({}));
  const serverList = step(() => parseServers(dnsMain.servers), () => parseServers(undefined));
  const relayAllow = step(() => parseRelayAllow(text('relay_acl_allow')), () => []);
  const authUsers = step(() => parseAuthUsers(text('auth_users')), () => new Map());
  const listenerTls = step<TernConfig['listenerTls']>(() => {
    const key = source.read('tls_key.pem');
    const cert = source.read('tls_cert.pem');
    if (!key !== !cert) {
      throw new ConfigError(key ? 'tls_cert.pem' : 'tls_key.pem', '(file)', '', 'tls_key.pem and tls_cert.pem must both exist or both be absent');
    }
    if (!key || !cert) return undefined;
    // The listener builds its TLS context from these at start: a key or certificate that
    // does not load is a config error here, not a crash when the listener is created.
    try {
      createSecureContext({ key, cert });
    } catch (err) {
      throw new ConfigError('tls_key.pem', '(file)', '', `tls_key.pem and tls_cert.pem do not load as a key and its certificate: ${(err as Error).message}`);
    }
    return { key, cert };
  }, () => undefined);
  const rewrite = step(() => parseRewriteRules(text(REWRITE_FILE)), () => parseRewriteRules(undefined));
  const dsnMain = step(() => validate('dsn.ini', dsnMainSchema, iniMain(source, 'dsn.ini')), () => dsnMainSchema.parse({}));
  const [mtaType, mtaName] = (dsnMain.reporting_mta ?? `dns; ${me}`).split(';').map((p) => p.trim());
  const bounceTemplate = text('outbound.bounce_message');
  const http = step(() => {
    const h = validate('http.ini', httpMainSchema, iniMain(source, 'http.ini'));
    const { host } = splitHostPort(h.listen);
    const loopback = host === 'localhost' || host === '::1' || host.startsWith('127.');
    if (!h.disabled && !loopback && !h.token) throw new ConfigError('http.ini', 'token', '', `required when listen (${h.listen}) is not a loopback address`);
    return h;
  }, () => httpMainSchema.parse({}));
  const log = step(() => validate('log.ini', logMainSchema, iniMain(source, 'log.ini')), () => logMainSchema.parse({}));
  const routes = step(() => parseRoutes(text('routes.ini')), () => new Map<string, Route>());
  const limits = step(() => parseLimits(text(LIMITS_FILE)), () => parseLimits(undefined));
  // Haraka's keys map onto the modes: enable_tls=false → disabled, force_tls → required,
  // tls.ini [outbound] rejectUnauthorized=true → verify.
  const defaultTlsMode = !outbound.enable_tls
    ? 'disabled'
    : outbound.tls_mode !== 'opportunistic'
      ? outbound.tls_mode
      : tls.outbound.rejectUnauthorized
        ? 'verify'
        : outbound.force_tls
          ? 'required'
          : 'opportunistic';
  const outboundCa = step(() => {
    if (!tls.outbound.ca) return undefined;
    const path = isAbsolute(tls.outbound.ca) ? tls.outbound.ca : join(dir, tls.outbound.ca);
    if (!existsSync(path)) throw new ConfigError('tls.ini', 'outbound.ca', tls.outbound.ca, 'file not found');
    const ca = readFileSync(path);
    try {
      new X509Certificate(ca);
    } catch {
      throw new ConfigError('tls.ini', 'outbound.ca', tls.outbound.ca, 'not a PEM certificate');
    }
    return ca;
  }, () => undefined);
  const dkim = step(() => parseDkim(text('dkim.ini'), dir), () => parseDkim(undefined, dir));
  const redis = step(() => checkRedisSettings(validate(REDIS_FILE, redisMainSchema, iniMain(source, REDIS_FILE))), () => redisMainSchema.parse({}));
  const automation = step(() => parseAutomation(text(AUTOMATION_FILE)), () => parseAutomation(undefined));
  return deepFreeze({
    redis,
    automation,
    dir,
    dkim,
    files: CONFIG_FILES.filter((f) => source.has(f)),
    log,
    routes,
    limits,
    defaultTlsMode,
    outboundCa,
    rewrite,
    dsn: { ...dsnMain, reportingMta: { type: mtaType, name: mtaName } },
    bounceTemplate,
    http,
    me,
    smtp,
    relayAllow,
    authUsers,
    outbound,
    tls,
    dns: { ...dnsMain, serverList },
    listenerTls,
  });
}
