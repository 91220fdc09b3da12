import type { Readable } from 'node:stream';
import { createSecureContext, rootCertificates } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { closedError } from '../core/index.js';
import type { Clock, Closable, DeliveryOutcome, PeerInfo, RecipientOutcome, SmtpReply } from '../core/index.js';
import { configHandle } from '../config/index.js';
import type { ConfigHandle, ConfigInput } from '../config/index.js';
import type { DnsResolver } from '../dns/index.js';
import { hostAddresses, resolveMxPlan } from '../dns/index.js';
import type { HookRunner, NextHop } from '../hooks/index.js';
import type { Logger } from '../log/index.js';
import { recipientOutcome } from '../smtp/index.js';
import type { QueueEntry } from '../spool/index.js';
import { DeliveryStatusRewriter } from '../rewrite/index.js';
import { DeliverySession } from './session.js';
import { SessionPool } from './pool.js';
import { LeasedSessions } from './leased-sessions.js';
import { LocalCoordinator } from '../cluster/index.js';
import type { ConnectionLease, LimitCoordinator, MessageRate, SharedPolicyCache, SharedTlsMemory } from '../cluster/index.js';
import { NoTlsMemory } from './no-tls-memory.js';
import { WirePacer } from './wire-pacer.js';
import { MtaStsPolicies, mxMatches } from './mta-sts.js';
import type { SessionRequest, SessionResult, SessionTimeouts, TlsMode } from './session.js';
import type { SessionTracer } from './tracer.js';

interface DeliveryTarget {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly port: number;
  readonly bind?: string;
  readonly helo?: string;
  readonly auth?: { readonly user: string; readonly pass: string };
  readonly authInsecure?: boolean;
  readonly lmtp?: boolean;
  readonly tlsMode: TlsMode;
  /** routes.ini max_deliveries_per_connection for this destination. */
  readonly maxDeliveries?: number;
}

/** What an attempt to a destination under limits.ini brings (the scheduler's DeliveryTicket). */
export interface AttemptTicket {
  /** The connection slot: at most one session under it at a time, closed before the slot is given back. */
  readonly lease: ConnectionLease;
  /** limits.ini max_deliveries_per_connection, over routes.ini's and outbound.ini's. */
  readonly maxDeliveries?: number;
  /** limits.ini max_message_rate of the slot's destination (lease.key), paced at the wire too. */
  readonly rate?: MessageRate;
}

export interface AgentDeps {
  /** The current resolver (a config reload may replace it). */
  readonly resolver: () => DnsResolver;
  readonly bodyBytesOrStream: (entry: QueueEntry) => Buffer | Readable;
  readonly logger: Logger;
  /** Plugin hooks (get_mx). */
  readonly hooks?: HookRunner;
  readonly clock: Clock;
  /** Where the rate's turns at the wire are taken (the scheduler's coordinator); default in-process. */
  readonly coordinator?: LimitCoordinator;
  /** redis.ini: the TLS-failure memory and MTA-STS policies of the other nodes, as caches (this node's own stay authoritative). */
  readonly shared?: SharedTlsMemory & SharedPolicyCache;
}

function everyone(recipients: readonly string[], reply: SmtpReply): RecipientOutcome[] {
  return recipients.map((address) => recipientOutcome(address, reply));
}

/**
 * Delivers one queue entry: destination domain → MX plan → one session per host in
 * order until one holds a transaction. Remote failures are outcomes, never exceptions.
 */
export class DeliveryAgent implements Closable {
  private readonly active = new Set<DeliverySession>();
  private readonly configs: ConfigHandle;
  private readonly unsubscribe: () => void;
  private closing?: Promise<void>;
  private secureContext?: SecureContext;
  private rewriter: DeliveryStatusRewriter;
  /** Opportunistic hosts whose TLS handshake failed, until when they get plaintext. */
  private readonly noTls: NoTlsMemory;

  private readonly sts: MtaStsPolicies;
  private readonly leased = new LeasedSessions();
  private readonly pacer: WirePacer;
  private readonly pool = new SessionPool(() => ({
    idleMs: this.config.outbound.idle_timeout * 1000,
    maxDeliveries: this.config.outbound.max_deliveries_per_connection,
  }));

  constructor(
    config: ConfigInput,
    private readonly deps: AgentDeps,
  ) {
    this.configs = configHandle(config);
    this.pacer = new WirePacer(deps.clock, deps.coordinator ?? new LocalCoordinator(deps.clock));
    this.rewriter = new DeliveryStatusRewriter(this.config.rewrite);
    this.noTls = new NoTlsMemory({ clock: deps.clock, logger: deps.logger, shared: deps.shared });
    this.sts = new MtaStsPolicies({
      shared: deps.shared,
      resolver: deps.resolver,
      clock: deps.clock,
      logger: deps.logger,
      ca: () => this.config.outboundCa,
      port: () => this.config.outbound.mta_sts_port,
      timeoutMs: () => this.config.outbound.connect_timeout * 1000,
    });
    // What is built from the config once: the rewrite rules, and the TLS context (rebuilt on first use).
    this.unsubscribe = this.configs.subscribe((next) => {
      this.rewriter = new DeliveryStatusRewriter(next.rewrite);
      this.secureContext = undefined;
    });
  }

  /** The config of the moment: a reload reaches the next attempt. */
  private get config() {
    return this.configs.current;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** SMTP sessions open right now, busy or idle in the pool (metrics). */
  get openSessions(): number {
    return this.active.size + this.pool.size + this.leased.size;
  }

  /**
   * The outbound TLS context, built once per config: the system's CAs plus tls.ini's `ca`
   * (Node's `ca` option alone would replace the system's), the minimum version and ciphers.
   */
  private tlsContext(): SecureContext {
    const t = this.config.tls.outbound;
    this.secureContext ??= createSecureContext({
      ca: this.config.outboundCa ? [...rootCertificates, this.config.outboundCa] : undefined,
      ...(t.minVersion ? { minVersion: t.minVersion as 'TLSv1.2' } : {}),
      ...(t.ciphers ? { ciphers: t.ciphers } : {}),
    });
    return this.secureContext;
  }

  /** A tracer that logs each step of the dialogue at trace level (log.ini level=protocol), when enabled. */
  private tracer(id: string): SessionTracer | undefined {
    const log = this.deps.logger;
    if (!log.isLevelEnabled('trace')) return undefined;
    return {
      connect: (peer, local) => log.trace({ id, peer, local }, 'smtp connect'),
      send: (line) => log.trace({ id, line }, 'smtp send'),
      reply: (reply) => log.trace({ id, code: reply.code, lines: reply.lines }, 'smtp reply'),
      tls: (info) => log.trace({ id, ...info }, 'smtp tls'),
      close: (why) => log.trace({ id, ...(why ? { reply: why } : {}) }, 'smtp close'),
    };
  }

  /** Ends the idle session of a connection slot and resolves once it has closed (the slot may then go back). */
  endLease(lease: ConnectionLease): Promise<void> {
    return this.leased.end(lease.id);
  }

  async deliver(entry: QueueEntry, ticket?: AttemptTicket): Promise<DeliveryOutcome> {
    // Not an outcome: a closed agent says nothing about the destination, so nothing is recorded against it.
    if (this.closed) throw closedError('delivery agent');
    const cfg = this.config;
    const unsettled = entry.recipients.filter((r) => r.state === 'pending' || r.state === 'deferred');
    const pending = unsettled.map((r) => r.address);
    if (pending.length === 0) return { recipients: [], tls: false };
    const targets = await this.targets(entry);
    if ('reply' in targets) return { recipients: everyone(pending, targets.reply), tls: false };

    const o = cfg.outbound;
    const timeouts: SessionTimeouts = {
      connect: o.connect_timeout,
      greeting: o.greeting_timeout,
      command: o.mail_timeout,
      mail: o.mail_timeout,
      rcpt: o.rcpt_timeout,
      dataInit: o.data_init_timeout,
      dataBlock: o.data_block_timeout,
      dataDone: o.data_done_timeout,
    };
    const rewriter = this.rewriter;
    const attempt = async (target: DeliveryTarget, peer: PeerInfo, tlsMode: TlsMode) => {
      const rate = ticket?.rate;
      const req: SessionRequest = {
        peer,
        ...(rate ? { pace: () => this.pacer.wait(ticket.lease.key, rate) } : {}),
        helo: target.helo ?? cfg.me,
        localAddress: target.bind,
        auth: target.auth,
        authInsecure: target.authInsecure,
        lmtp: target.lmtp,
        tlsMode,
        tls: { context: this.tlsContext() },
        timeouts,
        sender: entry.sender,
        // Each recipient with its own NOTIFY and ORCPT (RFC 3461 §4.1, §4.2).
        recipients: unsettled.map((r) => ({ address: r.address, ...(r.dsn ? { dsn: r.dsn } : {}) })),
        size: entry.size,
        eightBit: entry.bodyType === '8bitmime',
        smtpUtf8: entry.smtpUtf8,
        dsn: entry.dsn,
        tracer: this.tracer(entry.id),
        body: () => this.deps.bodyBytesOrStream(entry),
        rewriteReply: (reply) => rewriter.rewrite(reply, entry.domain),
      };
      // The MX name is part of the key: a session verified for one name must never carry mail
      // for another name that happens to share its address.
      const key = [peer.name, peer.address, peer.port, tlsMode, target.bind ?? '', req.helo, target.auth?.user ?? '', target.lmtp ? 'lmtp' : 'smtp'].join('|');
      // A session kept open by an earlier delivery to this host goes first; if it has gone
      // stale (no transaction started), a fresh one takes over. Under a connection slot, it
      // is the slot's own session (see LeasedSessions).
      let session = ticket ? await this.leased.take(ticket.lease.id, key) : this.pool.take(key);
      let result: SessionResult | undefined;
      if (session) {
        this.active.add(session);
        result = await session.transact(req);
        if (result.kind === 'unavailable') {
          this.active.delete(session);
          session.destroy();
          await session.whenClosed();
          session = undefined;
        }
      }
      if (!session) {
        // Idle sessions give way to new ones: open connections stay within concurrency_max.
        while (this.active.size + this.pool.size >= cfg.outbound.concurrency_max && this.pool.evictOne());
        session = new DeliverySession();
        this.active.add(session);
        result = await session.run(req);
      }
      this.active.delete(session);
      const tlsInfo = session.tlsInfo();
      if (ticket) {
        const max = ticket.maxDeliveries ?? target.maxDeliveries ?? o.max_deliveries_per_connection;
        const reusable = result!.kind === 'done' && session.deliveries < max && o.idle_timeout > 0 && !this.closed;
        await this.leased.keep(ticket.lease.id, key, session, reusable);
      } else if (result!.kind === 'done') void this.pool.give(key, session, target.maxDeliveries);
      else session.destroy();
      return { result: result!, tlsInfo };
    };
    let last: { reply: SmtpReply; peer: PeerInfo; tls: boolean } | undefined;
    for (const target of targets.hosts) {
      for (const address of target.addresses) {
        const peer: PeerInfo = { name: target.name, address, port: target.port };
        // An opportunistic host whose TLS handshake failed recently gets plaintext (Haraka does the same).
        // Only opportunistic: required, verify and MTA-STS enforce (verify) never hear of it.
        const host = { name: target.name, address, port: target.port };
        const remembered = target.tlsMode === 'opportunistic' && (await this.noTls.remembered(host, o.no_tls_memory > 0));
        let { result, tlsInfo } = await attempt(target, peer, remembered ? 'disabled' : target.tlsMode);
        if (result.kind === 'unavailable' && result.tlsFailed && target.tlsMode === 'opportunistic' && !remembered) {
          this.noTls.remember(host, o.no_tls_memory * 1000);
          this.deps.logger.warn({ id: entry.id, peer, reply: result.reply }, 'TLS handshake failed; retrying this host in plaintext');
          ({ result, tlsInfo } = await attempt(target, peer, 'disabled'));
        }
        if (result.protocolError) {
          this.deps.logger.warn({ id: entry.id, peer, reply: result.kind === 'unavailable' ? result.reply : result.recipients.find((r) => r.result === 'deferred')?.reply }, 'mail exchanger broke the SMTP protocol; session ended');
        }
        if (result.kind === 'done') return { recipients: result.recipients, peer, tls: result.tls, tlsInfo, nextHopDsn: result.nextHopDsn, ...(target.lmtp ? { lmtp: true } : {}) };
        last = { reply: result.reply, peer, tls: result.tls };
        this.deps.logger.info({ id: entry.id, peer, reply: result.reply }, 'mail exchanger unavailable, trying the next');
      }
    }
    // Every host refused a session. That is temporary unless a host said, in a reply, that it is permanent.
    const reply = last?.reply ?? { code: 451, enhanced: '4.4.0', text: 'no mail exchanger could be reached' };
    return { recipients: everyone(pending, reply), peer: last?.peer, tls: last?.tls ?? false, unreachable: last !== undefined };
  }

  /** Where to deliver: a get_mx plugin's next hops, else the domain's route, else its MX plan. */
  private async targets(entry: QueueEntry): Promise<{ hosts: DeliveryTarget[] } | { reply: SmtpReply }> {
    const cfg = this.config;
    const route = cfg.routes.get(entry.domain) ?? cfg.routes.get('*');
    const tlsMode: TlsMode = route?.tls ?? cfg.defaultTlsMode;
    const plugged = await this.deps.hooks?.getMx(entry);
    const hops: NextHop[] | undefined =
      plugged && plugged.length > 0
        ? plugged
        : route?.host
          ? route.host.split(',').map((host) => ({ host: host.trim(), port: route.port, bind: route.bind, bind_helo: route.bind_helo, auth_user: route.auth_user, auth_pass: route.auth_pass }))
          : undefined;
    if (hops) {
      const hosts: DeliveryTarget[] = [];
      let temporary: string | undefined;
      for (const hop of hops) {
        // Next hops an operator chose are used as given: local_mx_ok guards DNS answers, not configuration.
        const found = await hostAddresses(this.deps.resolver(), hop.host, cfg.outbound.inet_prefer);
        temporary ??= found.temporaryFailure;
        if (found.addresses.length === 0) continue;
        hosts.push({
          name: hop.host,
          addresses: found.addresses,
          port: hop.port ?? cfg.outbound.remote_port,
          bind: hop.bind,
          helo: hop.bind_helo,
          auth: hop.auth_user ? { user: hop.auth_user, pass: hop.auth_pass ?? '' } : undefined,
          authInsecure: plugged ? false : route?.auth_insecure,
          lmtp: plugged ? false : route?.lmtp,
          tlsMode,
          maxDeliveries: route?.max_deliveries_per_connection,
        });
      }
      if (hosts.length > 0) return { hosts };
      return { reply: { code: 451, enhanced: '4.4.3', text: `no address for the next hops ${hops.map((h) => h.host).join(', ')}${temporary ? `: ${temporary}` : ''}` } };
    }
    const plan = await resolveMxPlan(this.deps.resolver(), entry.domain, { inetPrefer: cfg.outbound.inet_prefer, localMxOk: cfg.outbound.local_mx_ok });
    if (!plan.ok) return { reply: plan.reply };
    let mxHosts = plan.hosts;
    let mode = tlsMode;
    const policy = cfg.outbound.mta_sts && !plan.implicit && !entry.domain.startsWith('[') ? await this.sts.policyFor(entry.domain) : undefined;
    if (policy && policy.mode !== 'none') {
      const matching = plan.hosts.filter((h) => mxMatches(policy.mx, h.name));
      if (policy.mode === 'enforce') {
        // RFC 8461 §4.2: only listed MX hosts, only with a certificate valid for their name.
        if (matching.length === 0) {
          return { reply: { code: 451, enhanced: '4.7.5', text: `MTA-STS policy of ${entry.domain} (enforce) lists none of its MX hosts ${plan.hosts.map((h) => h.name).join(', ')}` } };
        }
        mxHosts = matching;
        mode = 'verify';
      } else if (matching.length < plan.hosts.length) {
        this.deps.logger.warn(
          { domain: entry.domain, policy_mx: policy.mx, unlisted: plan.hosts.filter((h) => !matching.includes(h)).map((h) => h.name) },
          'MTA-STS (testing): MX hosts not in the policy would be refused under enforce',
        );
      }
    }
    return {
      hosts: mxHosts.map((h) => ({
        name: h.name,
        addresses: h.addresses,
        port: cfg.outbound.remote_port,
        bind: route?.bind,
        helo: route?.bind_helo,
        tlsMode: mode,
        maxDeliveries: route?.max_deliveries_per_connection,
      })),
    };
  }

  /** Shutdown: ends every session in progress and every idle one, without QUIT; their entries stay queued. Idempotent. */
  destroy(): void {
    this.closing ??= Promise.resolve();
    this.unsubscribe();
    for (const session of this.active) session.destroy();
    this.pool.destroy();
    this.leased.destroyAll();
  }

  /**
   * Clean shutdown: no new attempt, QUIT to the idle sessions. Attempts in progress run
   * to their end; the scheduler bounds how long it waits for them. Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.unsubscribe();
      this.leased.closeAll();
      this.closing = this.pool.close();
    }
    return this.closing;
  }
}
