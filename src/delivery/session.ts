import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { SmtpReply } from '../core/index.js';
import { localError } from '../core/index.js';
import { Capabilities, toSmtpReply } from '../smtp/index.js';
import type { WireReply } from '../smtp/index.js';
import { SmtpWire, WireFailure } from './smtp-wire.js';
import type { Phase } from './smtp-wire.js';
import { runTransaction } from './transaction.js';

export type { SessionTimeouts, SessionRequest, SessionRecipient, TlsMode, SessionResult } from './session-types.js';
import type { SessionRequest, SessionResult } from './session-types.js';
import { remoteOf } from './session-types.js';

const ok = (r: WireReply) => r.code >= 200 && r.code < 300;

/**
 * One SMTP (or LMTP) client session of Tern's own: open() connects, greets, EHLOs,
 * negotiates STARTTLS per the TLS mode and authenticates; transact() runs one
 * MAIL/RCPT/DATA transaction and may be called again after reset() (connection reuse).
 * Results are outcomes per recipient, never exceptions for a remote failure.
 */
export class DeliverySession {
  private wire?: SmtpWire;
  private caps = new Capabilities();
  private req?: SessionRequest;
  /** Transactions completed on this connection. */
  deliveries = 0;
  alive = false;
  /** The last transaction ended with the reply to its data (or never began): nothing to reset. */
  private clean = false;
  private readonly closeWaiters: (() => void)[] = [];

  /** A fresh connection and one transaction: what a first attempt to a host does. */
  async run(req: SessionRequest): Promise<SessionResult> {
    const failed = await this.open(req);
    return failed ?? this.transact(req);
  }

  private phaseSeconds(phase: Phase): number {
    const t = this.req!.timeouts;
    return { greeting: t.greeting, command: t.command, mail: t.mail, rcpt: t.rcpt, 'data-init': t.dataInit, 'data-block': t.dataBlock, 'data-done': t.dataDone }[phase];
  }

  private secure(): boolean {
    return Boolean(this.wire?.secure);
  }

  /** Connects and gets the session ready for MAIL; resolves undefined when ready, else why not. */
  async open(req: SessionRequest): Promise<SessionResult | undefined> {
    this.req = req;
    let wire: SmtpWire;
    try {
      wire = await SmtpWire.connect({
        peer: req.peer,
        localAddress: req.localAddress,
        connectTimeout: req.timeouts.connect,
        phaseSeconds: (phase) => this.phaseSeconds(phase),
        tracer: req.tracer,
      });
    } catch (err) {
      return this.unavailable(err);
    }
    this.wire = wire;
    wire.onClose = () => {
      this.alive = false;
      for (const resolve of this.closeWaiters.splice(0)) resolve();
    };
    try {
      const greeting = await wire.greeting;
      if (greeting.code !== 220) return this.refuse(req.rewriteReply(toSmtpReply(greeting, remoteOf(req))));
      let hello = await this.hello(wire, req);
      if (!hello.ok) return this.refuse(hello.reply);
      const mode = req.tlsMode;
      if (mode !== 'disabled') {
        const enforced = mode === 'required' || mode === 'verify';
        if (!hello.caps.has('STARTTLS')) {
          if (enforced) return this.refuse({ code: 451, enhanced: '4.7.10', text: `TLS is ${mode} for ${req.peer.name} but it offers no STARTTLS` }, true);
        } else {
          const go = await wire.startTls();
          if (!ok(go)) {
            // Opportunistic: carry on in plaintext in the same session (RFC 3207 §4).
            if (enforced) return this.refuse({ code: 451, enhanced: '4.7.10', text: `TLS is ${mode} for ${req.peer.name} but STARTTLS was refused: ${go.code} ${go.lines.join(' ')}` }, true);
          } else {
            await wire.upgrade(this.tlsOptions(req), mode);
            // RFC 3207 §4.2: forget everything learnt before TLS and ask again.
            hello = await this.hello(wire, req);
            if (!hello.ok) return this.refuse(hello.reply);
          }
        }
      }
      this.caps = hello.caps;
      if (req.auth) {
        const refused = await this.authenticate(wire, req);
        if (refused) return refused;
      }
      this.alive = !wire.closed;
      this.clean = true;
      return this.alive ? undefined : this.refuse({ code: 451, enhanced: '4.4.2', text: `connection closed by ${req.peer.name} [${req.peer.address}]` });
    } catch (err) {
      return this.unavailable(err);
    }
  }

  /** EHLO (LHLO for LMTP); HELO when the server does not know EHLO (RFC 5321 §3.2). */
  private async hello(wire: SmtpWire, req: SessionRequest): Promise<{ ok: true; caps: Capabilities } | { ok: false; reply: SmtpReply }> {
    const ehlo = await wire.command(`${req.lmtp ? 'LHLO' : 'EHLO'} ${req.helo}`, 'command');
    if (ok(ehlo)) return { ok: true, caps: new Capabilities(ehlo.lines) };
    if (req.lmtp || ehlo.code === 421 || ehlo.code < 500) return { ok: false, reply: req.rewriteReply(toSmtpReply(ehlo, remoteOf(req))) };
    const helo = await wire.command(`HELO ${req.helo}`, 'command');
    if (ok(helo)) return { ok: true, caps: new Capabilities() };
    return { ok: false, reply: req.rewriteReply(toSmtpReply(helo, remoteOf(req))) };
  }

  private tlsOptions(req: SessionRequest): ConnectionOptions {
    const verify = req.tlsMode === 'verify';
    const name = req.peer.name;
    return {
      // RFC 6066 §3: no IP literal as a server name.
      ...(isIP(name) ? {} : { servername: name }),
      host: name,
      rejectUnauthorized: verify,
      ...(req.tls.context
        ? { secureContext: req.tls.context }
        : {
            ...(req.tls.ca ? { ca: req.tls.ca } : {}),
            ...(req.tls.minVersion ? { minVersion: req.tls.minVersion as 'TLSv1.2' } : {}),
            ...(req.tls.ciphers ? { ciphers: req.tls.ciphers } : {}),
          }),
    };
  }

  /** AUTH PLAIN, else LOGIN (RFC 4954); only over TLS unless auth_insecure. Undefined on success. */
  private async authenticate(wire: SmtpWire, req: SessionRequest): Promise<SessionResult | undefined> {
    const { user, pass } = req.auth!;
    if (!wire.secure && !req.authInsecure) {
      return this.refuse({ code: 451, enhanced: '4.7.10', text: `${req.peer.name} offered no TLS; credentials are never sent in clear` });
    }
    const mechanisms = this.caps.authMechanisms;
    let reply: WireReply;
    if (mechanisms.includes('PLAIN') || !mechanisms.includes('LOGIN')) {
      reply = await wire.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`, 'command', 'AUTH PLAIN ****');
    } else {
      reply = await wire.command('AUTH LOGIN', 'command');
      if (reply.code === 334) reply = await wire.command(Buffer.from(user).toString('base64'), 'command', '****');
      if (reply.code === 334) reply = await wire.command(Buffer.from(pass).toString('base64'), 'command', '****');
    }
    if (reply.code === 235) return undefined;
    const remote = toSmtpReply(reply, remoteOf(req));
    return this.refuse(remote.code >= 400 ? remote : { code: 451, enhanced: '4.7.0', text: `authentication with ${req.peer.name} failed: ${remote.code} ${remote.text}` });
  }

  /** Ends the session before any transaction: the next host may do better. */
  private refuse(reply: SmtpReply, tlsFailed = false): SessionResult {
    const tls = this.secure();
    this.destroy();
    return { kind: 'unavailable', reply, tls, ...(tlsFailed ? { tlsFailed } : {}) };
  }

  private unavailable(err: unknown): SessionResult {
    const tls = this.secure();
    this.destroy();
    if (err instanceof WireFailure) {
      return { kind: 'unavailable', reply: err.reply, tls, ...(err.kind === 'tls' ? { tlsFailed: true } : {}), ...(err.kind === 'protocol' ? { protocolError: true } : {}) };
    }
    return { kind: 'unavailable', reply: localError(`delivery session failed: ${(err as Error).message}`), tls };
  }

  /** One transaction on the open session. */
  async transact(req: SessionRequest): Promise<SessionResult> {
    const wire = this.wire;
    if (req.pace && wire && this.alive && !wire.closed) await req.pace();
    if (!wire || !this.alive || wire.closed) return { kind: 'unavailable', reply: { code: 451, enhanced: '4.4.2', text: 'session is closed' }, tls: this.secure() };
    this.req = req;
    this.clean = false;
    wire.tracer = req.tracer;
    const t = await runTransaction(wire, this.caps, req);
    if (t.stale) {
      // Nothing was settled (the session died before MAIL was answered): a fresh session may do better.
      this.destroy();
      return { kind: 'unavailable', reply: t.stale, tls: this.secure(), ...(t.protocolError ? { protocolError: true } : {}) };
    }
    if (t.delivered) this.deliveries++;
    this.clean = t.clean;
    if (wire.closed) this.alive = false;
    return { kind: 'done', recipients: t.recipients, tls: this.secure(), nextHopDsn: this.caps.has('DSN'), ...(t.protocolError ? { protocolError: true } : {}) };
  }

  /** RSET before the next transaction on a reused session; false when the session is no longer usable. */
  async reset(): Promise<boolean> {
    const wire = this.wire;
    if (!wire || !this.alive || wire.closed) return false;
    // After the reply to the data the transaction is over on both sides (RFC 5321 §4.1.1.4):
    // a RSET would cost a round trip per message and tell nothing new. A session that died
    // idle fails its next MAIL before any data is sent, and a fresh session takes over.
    if (this.clean) return true;
    try {
      const reply = await wire.command('RSET', 'command');
      if (ok(reply)) {
        this.clean = true;
        return true;
      }
    } catch {
      // The session is gone; the pool drops it.
    }
    this.destroy();
    return false;
  }

  /** Ends a session politely (QUIT). */
  quit(): void {
    this.alive = false;
    this.wire?.quit();
  }

  /** The TLS version and cipher of the session, when STARTTLS succeeded. */
  tlsInfo(): { version: string; cipher: string } | undefined {
    return this.wire?.tlsInfo();
  }

  /** Resolves once the connection has closed (at once when it never opened or is closed). */
  whenClosed(): Promise<void> {
    if (!this.wire || this.wire.closed) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** Ends the session at once. */
  destroy(): void {
    this.alive = false;
    this.wire?.destroy();
  }
}
