import { randomUUID } from 'node:crypto';
import type { Clock, DeliveryOutcome, SmtpReply } from '../core/index.js';
import { rateText } from '../config/index.js';
import type { AutomationRule } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { AutomationCounter } from './automation-counter.js';

/** Only this much of a reply is matched: a hostile server's long reply costs no more than this. */
export const MATCHED_BYTES = 512;

/** What a rule that fired asks for, on the destination it names. */
export interface Firing {
  readonly rule: AutomationRule;
  /** The recipient domain (suspend; override without mx=), or `mx:<pattern>` (override with mx=). */
  readonly destination: string;
  /** The recipient domain whose reply crossed the threshold. */
  readonly domain: string;
  readonly reply: SmtpReply;
  readonly matches: number;
}

export interface AutomationOptions {
  /** The rules of the moment (a reload swaps them). */
  readonly rules: () => readonly AutomationRule[];
  readonly counter: AutomationCounter;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly nodeId: string;
  /** Carries the action out (a suspension or an override, set through the shared policy). */
  readonly fire: (firing: Firing) => Promise<void>;
}

/** A reply as a rule sees it: `<code> <enhanced> <text>` (the enhanced status left out when there is none), lines joined by a space, at most 512 bytes (a bound on what a pattern runs on, with regexHazard's refusals). */
export function replyLine(reply: SmtpReply): string {
  const text = reply.text.length > MATCHED_BYTES ? reply.text.slice(0, MATCHED_BYTES) : reply.text;
  return `${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''} ${text.replace(/\r?\n/g, ' ')}`.slice(0, MATCHED_BYTES);
}

/** Whether a rule watches this reply of this domain (its domains=, or the MX host that replied for mx=) and its pattern matches. */
export function ruleMatches(rule: AutomationRule, domain: string, reply: SmtpReply, line = replyLine(reply)): boolean {
  if (rule.domains && !rule.domains.includes(domain)) return false;
  if (rule.mxRegExp && !(reply.remote && rule.mxRegExp.test(reply.remote.name.toLowerCase()))) return false;
  return rule.match.test(line);
}

/**
 * automation.ini at work inside each node (KumoMTA runs it as a separate daemon that polls):
 * every attempt's remote replies (each distinct failure reply of its recipients, which
 * includes a session refused at the greeting or at EHLO) are matched against every rule;
 * a match counts once per attempt and rule, cluster-wide (AutomationCounter), and the match
 * that reaches the threshold fires the rule's action for its duration.
 */
export class Automation {
  constructor(private readonly options: AutomationOptions) {}

  observe(domain: string, entryId: string, outcome: DeliveryOutcome): void {
    const rules = this.options.rules();
    if (rules.length === 0) return;
    const replies = new Map<string, SmtpReply>();
    for (const r of outcome.recipients) {
      // Only what a remote server said, and only failures: Tern's own replies (DNS, time-outs) and 2xx are not matched.
      if (!r.reply.remote || r.reply.code < 400) continue;
      const line = replyLine(r.reply);
      if (!replies.has(line)) replies.set(line, r.reply);
    }
    if (replies.size === 0) return;
    for (const rule of rules) {
      for (const [line, reply] of replies) {
        if (!ruleMatches(rule, domain, reply, line)) continue;
        const destination = rule.action === 'override' && rule.mx ? `mx:${rule.mx}` : domain;
        void this.count(rule, destination, domain, reply, line, entryId);
        break;
      }
    }
  }

  private async count(rule: AutomationRule, destination: string, domain: string, reply: SmtpReply, line: string, entryId: string): Promise<void> {
    const { counter, logger, nodeId } = this.options;
    const member = `${nodeId}|${entryId}|${randomUUID()}`;
    const counted = await counter.hit(rule, destination, member);
    if (!counted.fired) return;
    const until = this.options.clock.now() + rule.durationMs;
    logger.warn(
      {
        event: 'automation_fired',
        rule: rule.name,
        destination,
        domain,
        action: rule.action,
        duration_ms: rule.durationMs,
        until: new Date(until).toISOString(),
        ...(rule.maxConnections !== undefined ? { max_connections: rule.maxConnections } : {}),
        ...(rule.maxMessageRate ? { max_message_rate: rateText(rule.maxMessageRate) } : {}),
        matches: counted.matches,
        threshold: rule.threshold,
        window_ms: rule.windowMs,
        reply: line,
        code: reply.code,
        ...(reply.enhanced ? { enhanced: reply.enhanced } : {}),
        ...(reply.remote ? { mx: reply.remote.name } : {}),
        counted: counted.local ? 'local' : 'cluster',
        node: nodeId,
      },
      'automation rule fired',
    );
    try {
      await this.options.fire({ rule, destination, domain, reply, matches: counted.matches });
    } catch (err) {
      logger.error({ event: 'automation_failed', rule: rule.name, destination, err: (err as Error).message }, 'an automation rule fired but its action could not be set');
    }
  }
}
