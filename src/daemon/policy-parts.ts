import type { Clock } from '../core/index.js';
import type { ConfigHandle } from '../config/index.js';
import { Automation, AutomationCounter, OverrideTable, PolicySync } from '../cluster/index.js';
import type { Firing, RedisLink } from '../cluster/index.js';
import type { Logger } from '../log/index.js';
import { DestinationPolicy, OverrideFile, Overrides } from '../scheduler/index.js';
import type { Deliverer, Scheduler } from '../scheduler/index.js';

/** A node's destination policy: overrides, suspensions shared through Redis, automation.ini. */
export interface PolicyParts {
  /** What DestinationKeys reads: the overrides in force. */
  readonly table: OverrideTable;
  /** Wires the parts that need the scheduler (built after the table). */
  attach(scheduler: Scheduler): DestinationPolicy;
  /** The deliverer, each attempt's outcome shown to automation.ini's rules. */
  observed(deliverer: Deliverer): Deliverer;
  close(): Promise<void>;
}

export interface PolicyContext {
  readonly queueDir: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly redis?: RedisLink;
  readonly nodeId: string;
}

/**
 * Builds the policy of one node (issue #17). With a RedisLink, suspensions and overrides
 * are shared (PolicySync) and automation counts cluster-wide; without one, both are this
 * node's own.
 */
export function policyParts(config: ConfigHandle, ctx: PolicyContext): PolicyParts {
  const { logger, clock, redis } = ctx;
  let policy: DestinationPolicy | undefined;
  let overrides: Overrides | undefined;
  let sync: PolicySync | undefined;
  // Shared records start, end and lapse by Redis's time (this node's clock plus its measured offset), not by a node's own clock.
  const policyClock: Clock = { now: () => sync?.redisNow() ?? clock.now() };
  const table = new OverrideTable(policyClock);
  const fire = async ({ rule, destination, domain }: Firing) => {
    const reason = rule.reason ?? `automation rule ${rule.name}`;
    if (rule.action === 'suspend') {
      // A suspension that lasts longer (an operator's, until resumed) is not cut short by a rule.
      const held = policy!.suspensions().find((s) => s.domain === domain);
      if (held && (held.until === undefined || held.until >= policyClock.now() + rule.durationMs)) return;
      await policy!.suspend(domain, { durationMs: rule.durationMs, reason, rule: rule.name });
      return;
    }
    await policy!.override(destination, {
      durationMs: rule.durationMs,
      reason,
      rule: rule.name,
      ...(rule.maxConnections !== undefined ? { maxConnections: rule.maxConnections } : {}),
      ...(rule.maxMessageRate ? { maxMessageRate: rule.maxMessageRate } : {}),
    });
  };
  const counter = new AutomationCounter(clock, redis);
  const automation = new Automation({ rules: () => config.current.automation.rules, counter, logger, clock, nodeId: ctx.nodeId, fire });
  return {
    table,
    attach(scheduler) {
      overrides = new Overrides({ table, store: new OverrideFile(ctx.queueDir), clock: policyClock, logger, reshape: () => scheduler.reshape() });
      policy = new DestinationPolicy(scheduler, overrides, policyClock, logger);
      // An operator's early lift unmutes the rule that set it (else it stays silent for its whole duration).
      policy.onRuleLift(({ rule, destination, here }) => void counter.forget(rule, destination, here));
      if (redis) {
        sync = new PolicySync({ link: redis, local: policy, logger, clock });
        const s = sync;
        policy.onChange((change) => s.announce(change));
        s.start();
      }
      return policy;
    },
    observed(deliverer) {
      return {
        deliver: async (entry, ticket) => {
          const outcome = await deliverer.deliver(entry, ticket);
          automation.observe(entry.domain, entry.id, outcome);
          return outcome;
        },
        ...(deliverer.endLease ? { endLease: (lease) => deliverer.endLease!(lease) } : {}),
        destroy: () => deliverer.destroy(),
      };
    },
    async close() {
      automation.close();
      overrides?.close();
      sync?.close();
      await Promise.all([overrides?.settled(), sync?.settled()]);
    },
  };
}
