import { rateSchema, rateText } from '../config/index.js';
import type { OverrideRecord } from '../cluster/index.js';
import type { Logger } from '../log/index.js';
import { QueueAdminError } from '../scheduler/index.js';
import type { PolicyOperations, Suspension } from '../scheduler/index.js';

const MAX_REASON = 500;
const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export const suspensionView = (s: Suspension) => ({ domain: s.domain, reason: s.reason, since: iso(s.since), until: iso(s.until), rule: s.rule ?? null });

export const overrideView = (o: OverrideRecord) => ({
  destination: o.destination,
  max_connections: o.maxConnections ?? null,
  max_message_rate: o.maxMessageRate ? rateText(o.maxMessageRate) : null,
  reason: o.reason,
  since: iso(o.since),
  until: iso(o.until),
  rule: o.rule ?? null,
});

function seconds(q: URLSearchParams, name: string): number | undefined {
  const raw = q.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new QueueAdminError('invalid', `${name} must be a positive number of seconds`);
  return n;
}

function reasonOf(q: URLSearchParams): string | undefined {
  const reason = q.get('reason') ?? undefined;
  if (reason !== undefined && reason.length > MAX_REASON) throw new QueueAdminError('invalid', `reason must be at most ${MAX_REASON} characters`);
  return reason;
}

/**
 * The destination policy routes of the admin API: `GET /domains/suspended` (suspensions and
 * overrides), `POST /domains/D/suspend|resume` (KumoMTA's suspend, with a reason and an
 * optional duration), `POST /domains/D/override?max_connections=&max_message_rate=&duration=`
 * and `POST /domains/D/clear`. D is a domain, or for an override an `mx:` pattern.
 */
export async function domainRoutes(policy: PolicyOperations, logger: Logger, method: string, parts: string[], q: URLSearchParams): Promise<unknown> {
  if (parts.length === 2 && parts[1] === 'suspended' && method === 'GET') {
    const list = policy.suspensions();
    return { suspended: list.map((x) => x.domain), suspensions: list.map(suspensionView), overrides: policy.overrides().map(overrideView) };
  }
  if (parts.length === 3 && method === 'POST') {
    const name = parts[1];
    switch (parts[2]) {
      case 'suspend': {
        const duration = seconds(q, 'duration');
        const suspension = await policy.suspend(name, { reason: reasonOf(q), durationMs: duration === undefined ? undefined : duration * 1000 });
        logger.info({ event: 'suspension_set', domain: suspension.domain, reason: suspension.reason, until: iso(suspension.until) }, 'delivery to domain suspended by the operator');
        return { suspended: suspension.domain, ...suspensionView(suspension) };
      }
      case 'resume': {
        const released = await policy.resume(name);
        logger.info({ event: 'suspension_lifted', domain: name.toLowerCase(), released }, 'delivery to domain resumed by the operator');
        return { resumed: name.toLowerCase(), released };
      }
      case 'override': {
        const duration = seconds(q, 'duration');
        if (duration === undefined) throw new QueueAdminError('invalid', 'an override needs a duration');
        const rawConnections = q.get('max_connections');
        const maxConnections = rawConnections === null || rawConnections === '' ? undefined : Number(rawConnections);
        const rawRate = q.get('max_message_rate');
        let maxMessageRate;
        if (rawRate !== null && rawRate !== '') {
          const parsed = rateSchema.safeParse(rawRate);
          if (!parsed.success || !parsed.data) throw new QueueAdminError('invalid', 'max_message_rate must be a rate such as 50/s, 100/min or 1000/h');
          maxMessageRate = parsed.data;
        }
        const o = await policy.override(name, { durationMs: duration * 1000, reason: reasonOf(q), ...(maxConnections !== undefined ? { maxConnections } : {}), ...(maxMessageRate ? { maxMessageRate } : {}) });
        return { overridden: o.destination, ...overrideView(o) };
      }
      case 'clear': {
        const gone = await policy.clear(name);
        logger.info({ event: 'override_cleared', destination: name.toLowerCase(), had: gone !== undefined }, 'limit override lifted by the operator');
        return { cleared: name.toLowerCase(), had_override: gone !== undefined };
      }
    }
  }
  throw new QueueAdminError('not_found', `no such endpoint: ${method} /${parts.join('/')}`);
}
