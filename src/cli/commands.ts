import { apiTarget, call } from './control-client.js';
import type { ApiTarget } from './control-client.js';
import { size, span, table } from './format.js';
import type { ConfigLocation } from './locations.js';
import { QUEUE_ACTION_USAGE, queueAction } from './queue-actions.js';

export interface CliOptions {
  readonly config: ConfigLocation;
  readonly json: boolean;
  readonly api?: string;
  readonly token?: string;
  readonly domain?: string;
  readonly state?: string;
  readonly olderThan?: string;
  readonly sender?: string;
  readonly recipient?: string;
  readonly limit?: string;
  readonly offset?: string;
  /** `tern config show -n`: only the settings that differ from the defaults. */
  readonly nonDefault?: boolean;
  readonly duration?: string;
  readonly reason?: string;
  /** `tern domain override`. */
  readonly maxConnections?: string;
  readonly maxMessageRate?: string;
}

interface Summary {
  id: string;
  state: string;
  domain: string;
  sender: string;
  recipients: { address: string; state: string }[];
  size: number;
  attempts: number;
  queued_at: string;
  next_attempt_at: string;
  last_reply: string | null;
  waiting?: string | null;
}

const LS_USAGE = 'tern queue ls [--domain D] [--state S] [--sender ADDR] [--recipient ADDR] [--older-than SECONDS] [--limit N] [--offset N]';

export const out = (s: string) => process.stdout.write(s);

function queueTable(list: { total: number; entries: Summary[]; offset: number }): string {
  const now = Date.now();
  const rows = list.entries.map((e) => [
    e.id,
    e.state,
    e.domain,
    e.sender || '<>',
    String(e.recipients.length),
    size(e.size),
    String(e.attempts),
    span((now - Date.parse(e.queued_at)) / 1000),
    e.state === 'held' ? '-' : (e.waiting ?? span((Date.parse(e.next_attempt_at) - now) / 1000)),
    e.last_reply ?? '',
  ]);
  const shown = list.entries.length ? `${list.offset + 1}-${list.offset + list.entries.length}` : '0';
  return table(['ID', 'STATE', 'DOMAIN', 'SENDER', 'RCPTS', 'SIZE', 'TRIES', 'AGE', 'NEXT', 'LAST REPLY'], rows) + `-- ${shown} of ${list.total} entries\n`;
}

/** `tern queue …`: mailq/postqueue/postsuper over the admin API. */
export async function queueCommand(args: string[], o: CliOptions): Promise<number> {
  const target: ApiTarget = apiTarget(o);
  const [verb, id, ...extra] = args;
  const print = (body: unknown, human: () => string) => out(o.json ? JSON.stringify(body, null, 2) + '\n' : human());
  switch (verb) {
    case 'ls':
    case undefined: {
      const q = new URLSearchParams();
      if (o.domain) q.set('domain', o.domain);
      if (o.state) q.set('state', o.state);
      if (id !== undefined) return usage(LS_USAGE);
      if (o.olderThan) q.set('older_than', o.olderThan);
      if (o.sender !== undefined) q.set('sender', o.sender);
      if (o.recipient !== undefined) q.set('recipient', o.recipient);
      if (o.limit) q.set('limit', o.limit);
      if (o.offset) q.set('offset', o.offset);
      const body = (await call(target, 'GET', `/queue?${q}`)) as { total: number; entries: Summary[]; offset: number };
      print(body, () => queueTable(body));
      return 0;
    }
    case 'show': {
      if (!id || extra.length) return usage('tern queue show ID (an entry, or a message id for all its entries)');
      type Shown = Omit<Summary, 'recipients'> & { recipients: { address: string; state: string; lastReply?: { code: number; enhanced?: string; text: string } }[] };
      const body = (await call(target, 'GET', `/queue/${encodeURIComponent(id)}`)) as Shown | { message_id: string; entries: Shown[] };
      const one = (e: Shown) => {
        const head = Object.entries({ id: e.id, state: e.state, domain: e.domain, sender: e.sender || '<>', size: size(e.size), attempts: e.attempts, queued: e.queued_at, next: e.next_attempt_at })
          .map(([k, v]) => `${k.padEnd(9)}${v}`)
          .join('\n');
        const rcpts = table(['RECIPIENT', 'STATE', 'LAST REPLY'], e.recipients.map((r) => [r.address, r.state, r.lastReply ? `${r.lastReply.code} ${r.lastReply.enhanced ?? ''} ${r.lastReply.text}`.replace(/\s+/g, ' ') : '']));
        return `${head}\n\n${rcpts}`;
      };
      print(body, () => ('entries' in body ? body.entries.map(one).join('\n') : one(body)));
      return 0;
    }
    case 'flush': {
      if (id !== undefined) return usage('tern queue flush [--domain D]');
      const body = (await call(target, 'POST', `/queue/flush${o.domain ? `?domain=${encodeURIComponent(o.domain)}` : ''}`)) as { flushed: number };
      print(body, () => `flushed ${body.flushed} entr${body.flushed === 1 ? 'y' : 'ies'}\n`);
      return 0;
    }
    case 'rm':
    case 'hold':
    case 'release':
    case 'bounce':
      return queueAction(verb, args.slice(1), o, usage);
    default:
      return usage(`${LS_USAGE} | show ID | flush [--domain D] | ${QUEUE_ACTION_USAGE.replace('tern queue ', '')}`);
  }
}

export function usage(text: string): number {
  process.stderr.write(`usage: ${text}\n`);
  return 2;
}
