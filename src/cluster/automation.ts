import { randomUUID } from 'node:crypto';
import type { Clock, DeliveryOutcome, SmtpReply } from '../core/index.js';
import { rateText } from '../config/index.js';
import type { AutomationRule } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { AutomationCounter, Count } from './automation-counter.js';
import { AutomationMatcher } from './automation-matcher.js';

/** Only this much of a reply is matched: a hostile server's long reply costs no more than this. */
export const MATCHED_BYTES = 512;

/** Counting calls kept for asking again at most (the oldest go first). */
const MAX_UNHEARD = 10_000;

/** A counting call Redis did not answer, kept with what its firing would log and do. */
interface Unheard {
  readonly rule: AutomationRule;
  readonly destination: string;
  readonly domain: string;
  readonly reply: SmtpReply;
  readonly line: string;
  readonly member: string;
}

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
  /** The time bound per rule and reply in the match worker (tests shorten it); MATCH_BOUND_MS by default. */
  readonly matchBoundMs?: number;
}

/** A reply as a rule sees it: `<code> <enhanced> <text>` (the enhanced status left out when there is none), lines joined by a space, at most 512 bytes (a bound on what a pattern runs on, with regexHazard's refusals and the match worker's time bound). */
export function replyLine(reply: SmtpReply): string {
  const text = reply.text.length > MATCHED_BYTES ? reply.text.slice(0, MATCHED_BYTES) : reply.text;
  return `${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''} ${text.replace(/\r?\n/g, ' ')}`.slice(0, MATCHED_BYTES);
}

/** Whether a rule watches this reply of this domain: its domains=, or the MX host that replied for mx= (a glob the config compiled, safe on the event loop). */
export function ruleWatches(rule: AutomationRule, domain: string, reply: SmtpReply): boolean {
  if (rule.domains && !rule.domains.includes(domain)) return false;
  return !rule.mxRegExp || !!(reply.remote && rule.mxRegExp.test(reply.remote.name.toLowerCase()));
}

/**
 * Whether a rule watches this reply and its pattern matches, on the calling thread: for
 * `tern` tools and tests on trusted text only. The daemon matches remote replies in the
 * match worker (AutomationMatcher), where a slow pattern cannot block the event loop.
 */
export function ruleMatches(rule: AutomationRule, domain: string, reply: SmtpReply, line = replyLine(reply)): boolean {
  return ruleWatches(rule, domain, reply) && rule.match.test(line);
}

/**
 * automation.ini at work inside each node (KumoMTA runs it as a separate daemon that polls):
 * every attempt's remote replies (each distinct failure reply of its recipients, which
 * includes a session refused at the greeting or at EHLO) are matched against every rule;
 * a match counts once per attempt and rule, cluster-wide (AutomationCounter), and the match
 * that reaches the threshold fires the rule's action for its duration. Patterns run in a
 * worker thread with a time bound (AutomationMatcher): a reply is matched a moment after the
 * attempt, never on the event loop.
 */
export class Automation {
  /** Counting calls sent to Redis and not answered, by member. */
  private readonly unheard = new Map<string, Unheard>();
  private readonly stopListening: () => void;
  private readonly matcher: AutomationMatcher;
  /** Attempts being matched and counted (settled() waits for them). */
  private readonly working = new Set<Promise<void>>();

  constructor(private readonly options: AutomationOptions) {
    this.stopListening = options.counter.onUp(() => void this.askAgain());
    this.matcher = new AutomationMatcher({ logger: options.logger, clock: options.clock, ...(options.matchBoundMs !== undefined ? { boundMs: options.matchBoundMs } : {}) });
  }

  /** Rule runs that overran the time bound, and replies not matched because too many waited (since start). */
  get matchTimeouts(): number {
    return this.matcher.timeouts;
  }

  get matchDropped(): number {
    return this.matcher.dropped;
  }

  /** Resolves once every attempt observed so far is matched and its counting calls answered. */
  async settled(): Promise<void> {
    while (this.working.size > 0) await Promise.allSettled([...this.working]);
  }

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
    this.track(this.matchAll(rules, domain, entryId, replies));
  }

  /** Stops asking again on Redis's return, and the match worker (the daemon's shutdown). */
  close(): void {
    this.stopListening();
    void this.matcher.close();
  }

  private track(work: Promise<void>): void {
    this.working.add(work);
    work
      .catch((err: Error) => this.options.logger.error({ event: 'automation_failed', err: err.message }, 'an automation reply could not be matched or counted'))
      .finally(() => this.working.delete(work));
  }

  /** Each rule counts once per attempt: on the first of the attempt's distinct replies it matches. */
  private async matchAll(rules: readonly AutomationRule[], domain: string, entryId: string, replies: Map<string, SmtpReply>): Promise<void> {
    let left = rules;
    for (const [line, reply] of replies) {
      const watching = left.filter((rule) => ruleWatches(rule, domain, reply));
      if (watching.length === 0) continue;
      const matched = await this.matcher.match(line, watching, rules);
      if (matched.size === 0) continue;
      for (const rule of watching) {
        if (!matched.has(rule.name)) continue;
        const destination = rule.action === 'override' && rule.mx ? `mx:${rule.mx}` : domain;
        this.track(this.count(rule, destination, domain, reply, line, entryId));
      }
      left = left.filter((rule) => !matched.has(rule.name));
      if (left.length === 0) return;
    }
  }

  private async count(rule: AutomationRule, destination: string, domain: string, reply: SmtpReply, line: string, entryId: string): Promise<void> {
    const { counter, nodeId } = this.options;
    // A call of this rule and destination Redis never answered is asked again first: it may be the one that fired.
    if (this.unheard.size > 0) await this.askAgain((u) => u.rule.name === rule.name && u.destination === destination);
    const member = `${nodeId}|${entryId}|${randomUUID()}`;
    const counted = await counter.hit(rule, destination, member);
    if (counted.unheard) this.keep({ rule, destination, domain, reply, line, member });
    if (counted.fired) await this.fired({ rule, destination, domain, reply, line, member }, counted);
  }

  private keep(call: Unheard): void {
    if (this.unheard.size >= MAX_UNHEARD) this.unheard.delete(this.unheard.keys().next().value!);
    this.unheard.set(call.member, call);
  }

  /**
   * Asks Redis again, with the same member and arguments, the counting calls it did not
   * answer (on `up`, or at the next match of the same rule and destination). The script
   * answers "fired" only to the member that set the rule's marker: this node then fires it,
   * the only one in the cluster to do so, unless its own count fired it during the outage.
   */
  private async askAgain(which: (call: Unheard) => boolean = () => true): Promise<void> {
    for (const call of [...this.unheard.values()].filter(which)) {
      // Taken before asking, so that two askings at once (an `up` and a match) do not both fire.
      if (!this.unheard.delete(call.member)) continue;
      const counted = await this.options.counter.ask(call.rule, call.destination, call.member);
      if (!counted) {
        this.keep(call);
        return;
      }
      if (counted.fired && !this.options.counter.firedHere(call.rule.name, call.destination)) await this.fired(call, counted);
    }
  }

  private async fired(call: Unheard, counted: Count): Promise<void> {
    const { logger, nodeId } = this.options;
    const { rule, destination, domain, reply, line } = call;
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
