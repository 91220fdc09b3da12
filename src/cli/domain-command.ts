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
}

const USAGE = 'tern domain suspend DOMAIN [--duration 2h] [--reason TEXT] | resume DOMAIN | ls';

function fail(text: string): number {
  process.stderr.write(`tern: ${text}\n`);
  return 2;
}

function suspensionTable(list: SuspensionView[]): string {
  if (list.length === 0) return 'no domain is suspended\n';
  const now = Date.now();
  const rows = list.map((s) => [s.domain, s.until ? `${s.until} (in ${span((Date.parse(s.until) - now) / 1000)})` : 'until resumed', s.reason]);
  return table(['DOMAIN', 'UNTIL', 'REASON'], rows);
}

/** `tern domain suspend|resume|ls`: KumoMTA's suspensions, with a duration and a reason. */
export async function domainCommand(args: string[], o: CliOptions): Promise<number> {
  const [verb, domain, ...extra] = args;
  if (verb === 'ls' && domain === undefined) {
    const body = (await call(apiTarget(o), 'GET', '/domains/suspended')) as { suspended: string[]; suspensions: SuspensionView[] };
    process.stdout.write(o.json ? JSON.stringify(body) + '\n' : suspensionTable(body.suspensions));
    return 0;
  }
  if ((verb !== 'suspend' && verb !== 'resume') || domain === undefined || extra.length > 0) return fail(`usage: ${USAGE}`);
  if (!isDomainName(domain.toLowerCase())) return fail(`${JSON.stringify(domain)} is not a domain name`);
  const q = new URLSearchParams();
  if (verb === 'suspend') {
    if (o.duration !== undefined) {
      const seconds = parseDuration(o.duration);
      if (!seconds) return fail(`--duration ${JSON.stringify(o.duration)}: give a time span such as 30m, 2h or 7d`);
      q.set('duration', String(seconds));
    }
    if (o.reason !== undefined) q.set('reason', o.reason);
  } else if (o.duration !== undefined || o.reason !== undefined) {
    return fail('--duration and --reason go with suspend');
  }
  const body = (await call(apiTarget(o), 'POST', `/domains/${encodeURIComponent(domain)}/${verb}${q.size ? `?${q}` : ''}`)) as { released?: number; until?: string | null };
  const human = verb === 'suspend' ? `suspended ${domain} ${body.until ? `until ${body.until}` : 'until resumed'}` : `resumed (${body.released ?? 0} entries due again) ${domain}`;
  process.stdout.write(o.json ? JSON.stringify(body) + '\n' : `${human}\n`);
  return 0;
}
