import type { SmtpReply } from '../core/index.js';
import type { RewriteRules } from '../config/index.js';
import { formatReply } from '../smtp/index.js';

interface CompiledRule {
  readonly regex: RegExp;
  readonly code: number;
}

/**
 * KumoMTA's smtp_client_rewrite_delivery_status as a pure function: a remote failure
 * reply is matched, as `<code> <enhanced> <text>`, against the destination domain's
 * rules and then the global ones, first match in file order wins, and the new code
 * decides the outcome. The enhanced code's class follows the new code, so that a
 * report never says `Action: failed` beside a 4.x.x status.
 */
export class DeliveryStatusRewriter {
  private readonly global: readonly CompiledRule[];
  private readonly domains: ReadonlyMap<string, readonly CompiledRule[]>;

  constructor(rules: RewriteRules) {
    const compile = (list: RewriteRules['global']) => list.map((r) => ({ regex: new RegExp(r.pattern), code: r.code }));
    this.global = compile(rules.global);
    this.domains = new Map([...rules.domains].map(([domain, list]) => [domain, compile(list)]));
  }

  get size(): number {
    let n = this.global.length;
    for (const list of this.domains.values()) n += list.length;
    return n;
  }

  /** The reply as the operator's rules restate it; the same object when no rule applies. */
  rewrite(reply: SmtpReply, domain: string): SmtpReply {
    // Successes are never rewritten: a rule can only move a failure between temporary and permanent.
    if (reply.code < 400 || this.size === 0) return reply;
    const line = formatReply(reply);
    const rule = this.domains.get(domain.toLowerCase())?.find((r) => r.regex.test(line)) ?? this.global.find((r) => r.regex.test(line));
    if (!rule || rule.code === reply.code) return reply;
    const newClass = String(rule.code)[0];
    return {
      code: rule.code,
      enhanced: reply.enhanced ? newClass + reply.enhanced.slice(1) : undefined,
      text: `${reply.text} (tern: status was rewritten from ${reply.code} -> ${rule.code})`,
      // The text is still the mail exchanger's, and the report says it was rewritten.
      ...(reply.remote ? { remote: reply.remote } : {}),
    };
  }
}
