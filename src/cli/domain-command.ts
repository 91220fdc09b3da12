import { parseDuration } from '../config/index.js';
import { isDomainName } from '../smtp/index.js';
import type { CliOptions } from './commands.js';
import { apiTarget, call } from './control-client.js';
import { span, table } from './format.js';

interface SuspensionView {
  domain: string;
  reason: string;
  since: string;
  until: string | null;
  rule?: string | null;
}

interface OverrideView {
  destination: string;
  max_connections: number | null;
  max_message_rate: string | null;
  reason: string;
  since: string;
  until: string;
  rule?: string | null;
}

const USAGE =
  'tern domain suspend DOMAIN [--duration 2h] [--reason TEXT] | resume DOMAIN | override DESTINATION [--max-connections N] [--max-message-rate 10/min] --duration 90m [--reason TEXT] | clear DESTINATION | ls';

function fail(text: string): number {
  process.stderr.write(`tern: ${text}\n`);
  return 2;
}

const untilText = (until: string | null, now: number) => (until ? `${until} (in ${span(Math.max(0, Date.parse(until) - now) / 1000)})` : 'until resumed');

function policyTables(suspensions: SuspensionView[], overrides: OverrideView[]): string {
  const now = Date.now();
  const parts: string[] = [];
  if (suspensions.length === 0) parts.push('no domain is suspended\n');
  else if (suspensions.some((s) => s.rule)) parts.push(table(['DOMAIN', 'UNTIL', 'REASON', 'RULE'], suspensions.map((s) => [s.domain, untilText(s.until, now), s.reason, s.rule ?? '-'])));
  // The rule column only when automation set one (the table scripts read stays as it was).
  else parts.push(table(['DOMAIN', 'UNTIL', 'REASON'], suspensions.map((s) => [s.domain, untilText(s.until, now), s.reason])));
  if (overrides.length > 0) {
    const rows = overrides.map((o) => [o.destination, o.max_connections === null ? '-' : String(o.max_connections), o.max_message_rate ?? '-', untilText(o.until, now), o.reason, o.rule ?? '-']);
    parts.push(table(['OVERRIDE', 'MAX CONN', 'MAX RATE', 'UNTIL', 'REASON', 'RULE'], rows));
  }
  return parts.join('\n');
}

/** A domain, or (override, clear) an `mx:` pattern. */
function validName(verb: string, name: string): boolean {
  const lower = name.toLowerCase();
  if ((verb === 'override' || verb === 'clear') && lower.startsWith('mx:')) return /^mx:[a-z0-9*.-]{1,253}$/.test(lower);
  return isDomainName(lower);
}

/** `tern domain suspend|resume|override|clear|ls`: KumoMTA's suspensions and overrides, with a duration and a reason. */
export async function domainCommand(args: string[], o: CliOptions): Promise<number> {
  const [verb, domain, ...extra] = args;
  if (verb === 'ls' && domain === undefined) {
    const body = (await call(apiTarget(o), 'GET', '/domains/suspended')) as { suspended: string[]; suspensions: SuspensionView[]; overrides?: OverrideView[] };
    process.stdout.write(o.json ? JSON.stringify(body) + '\n' : policyTables(body.suspensions, body.overrides ?? []));
    return 0;
  }
  if (!['suspend', 'resume', 'override', 'clear'].includes(verb) || domain === undefined || extra.length > 0) return fail(`usage: ${USAGE}`);
  if (!validName(verb, domain)) return fail(`${JSON.stringify(domain)} is not a domain name`);
  const q = new URLSearchParams();
  if (verb !== 'override' && (o.maxConnections !== undefined || o.maxMessageRate !== undefined)) return fail('--max-connections and --max-message-rate go with override');
  if (verb === 'suspend' || verb === 'override') {
    if (o.duration !== undefined) {
      const seconds = parseDuration(o.duration);
      if (!seconds) return fail(`--duration ${JSON.stringify(o.duration)}: give a time span such as 30m, 2h or 7d`);
      q.set('duration', String(seconds));
    } else if (verb === 'override') return fail('override needs --duration (an override always ends by itself)');
    if (o.reason !== undefined) q.set('reason', o.reason);
  } else if (o.duration !== undefined || o.reason !== undefined) {
    return fail('--duration and --reason go with suspend and override');
  }
  if (verb === 'override') {
    if (o.maxConnections === undefined && o.maxMessageRate === undefined) return fail('override needs --max-connections N or --max-message-rate RATE');
    if (o.maxConnections !== undefined) {
      if (!/^\d+$/.test(o.maxConnections) || Number(o.maxConnections) < 1) return fail(`--max-connections ${JSON.stringify(o.maxConnections)}: give a whole number of 1 or more`);
      q.set('max_connections', o.maxConnections);
    }
    if (o.maxMessageRate !== undefined) q.set('max_message_rate', o.maxMessageRate);
  }
  const body = (await call(apiTarget(o), 'POST', `/domains/${encodeURIComponent(domain)}/${verb}${q.size ? `?${q}` : ''}`)) as {
    released?: number;
    until?: string | null;
    max_connections?: number | null;
    max_message_rate?: string | null;
    had_override?: boolean;
  };
  const human = {
    suspend: () => `suspended ${domain} ${body.until ? `until ${body.until}` : 'until resumed'}`,
    resume: () => `resumed (${body.released ?? 0} entries due again) ${domain}`,
    override: () => `overridden ${domain}: max_connections=${body.max_connections ?? '-'} max_message_rate=${body.max_message_rate ?? '-'} until ${body.until}`,
    clear: () => `cleared ${domain}${body.had_override ? '' : ' (it had no override here)'}`,
  }[verb as 'suspend' | 'resume' | 'override' | 'clear']();
  process.stdout.write(o.json ? JSON.stringify(body) + '\n' : `${human}\n`);
  return 0;
}
