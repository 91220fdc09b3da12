import type { Readable } from 'node:stream';
import type { RecipientOutcome, SmtpReply } from '../core/index.js';
import { localError } from '../core/index.js';
import { recipientOutcome, DotStuffer, dotStuffed, mailCommand, rcptCommand, toSmtpReply } from '../smtp/index.js';
import type { Capabilities, WireReply } from '../smtp/index.js';
import { WireFailure } from './smtp-wire.js';
import type { SmtpWire } from './smtp-wire.js';
import type { SessionRequest } from './session-types.js';
import { remoteOf } from './session-types.js';

export interface TransactionResult {
  readonly recipients: RecipientOutcome[];
  /** The message was accepted for at least one recipient (it counts as a delivery on this connection). */
  readonly delivered: boolean;
  /** The transaction ended with the reply to the data (or never began): no RSET needed. */
  readonly clean: boolean;
  /** The session died before MAIL was answered: nothing is settled, the reason. */
  readonly stale?: SmtpReply;
  readonly protocolError?: boolean;
}

const accepted = (r: WireReply | undefined) => r !== undefined && r.code >= 200 && r.code < 300;

const nonAscii = (s: string) => /[^\x00-\x7f]/.test(s);

/** A session-level failure defers: only a reply addressed to the transaction may fail it for good. */
function toTransient(reply: SmtpReply): SmtpReply {
  if (reply.code < 500) return reply;
  // The remote did not say 451: the code is Tern's now, and so is the reply.
  const { remote: _remote, ...own } = reply;
  return { ...own, code: 451 };
}

/**
 * One MAIL/RCPT/DATA transaction. With PIPELINING (RFC 2920) MAIL, every RCPT and DATA
 * go in one write and their replies are read in order; without it, one command at a time,
 * stopping early when MAIL or every RCPT is refused. A small body goes out with its final
 * dot in one write; a larger one streams from the spool, dot-stuffed, with backpressure.
 * LMTP (RFC 2033 §4.2) gets one reply per accepted recipient after the dot.
 */
export async function runTransaction(wire: SmtpWire, caps: Capabilities, req: SessionRequest): Promise<TransactionResult> {
  const rcpts = req.recipients;
  const limit = caps.sizeLimit;
  if (limit !== undefined && req.size > limit) {
    // RFC 1870 §6: the server said up front it would refuse this message.
    const reply = { code: 552, enhanced: '5.3.4', text: `message size ${req.size} exceeds the limit of ${limit} octets that ${req.peer.name} announced` };
    return { recipients: rcpts.map((r) => recipientOutcome(r.address, reply)), delivered: false, clean: true };
  }
  if (req.smtpUtf8 && !caps.has('SMTPUTF8') && [req.sender, ...rcpts.map((r) => r.address)].some(nonAscii)) {
    // RFC 6531 §3.2: an address in UTF-8 cannot be handed to a server without SMTPUTF8;
    // the message is returned, as Postfix does (no downgrade of addresses exists).
    const reply = { code: 553, enhanced: '5.6.7', text: `SMTPUTF8 is required, but was not offered by ${req.peer.name} [${req.peer.address}]` };
    return { recipients: rcpts.map((r) => recipientOutcome(r.address, reply)), delivered: false, clean: true };
  }
  const mail = mailCommand(req.sender, { size: req.size, eightBit: req.eightBit, smtpUtf8: !!req.smtpUtf8, dsn: req.dsn }, caps);
  let mailReply: WireReply | undefined;
  const rcptReplies: (WireReply | undefined)[] = rcpts.map(() => undefined);
  let dataReply: WireReply | undefined;
  const finals: (WireReply | undefined)[] = rcpts.map(() => undefined);
  let clean = false;

  // The reply that decides a recipient goes through the rewrite rules; one that fits no
  // outcome (a 3xx where only 2xx, 4xx or 5xx make sense, a 2xx to DATA) is a protocol error.
  const verdict = (r: WireReply, good: (r: WireReply) => boolean): SmtpReply =>
    r.code >= 400 || good(r) ? req.rewriteReply(toSmtpReply(r, remoteOf(req))) : { code: 451, enhanced: '4.5.0', text: `protocol error: ${req.peer.name} [${req.peer.address}] answered ${r.code} where it makes no sense` };
  const settle = (fallback?: SmtpReply, protocolError?: boolean): TransactionResult => ({
    recipients: rcpts.map(({ address }, i) => {
      const rcpt = rcptReplies[i];
      const final = finals[i];
      if (mailReply && !accepted(mailReply)) return recipientOutcome(address, verdict(mailReply, accepted));
      if (rcpt && !accepted(rcpt)) return recipientOutcome(address, verdict(rcpt, accepted));
      if (dataReply && dataReply.code !== 354) return recipientOutcome(address, verdict(dataReply, () => false));
      if (final) return recipientOutcome(address, verdict(final, accepted));
      return recipientOutcome(address, toTransient(fallback ?? { code: 451, enhanced: '4.4.2', text: 'session ended before the message was accepted' }));
    }),
    delivered: finals.some(accepted),
    clean,
    ...(protocolError ? { protocolError } : {}),
  });

  try {
    if (caps.has('PIPELINING')) {
      const replies = wire.pipeline([
        { line: mail, phase: 'mail' },
        ...rcpts.map((r) => ({ line: rcptCommand(r.address, r.dsn, caps), phase: 'rcpt' as const })),
        { line: 'DATA', phase: 'data-init' },
      ]);
      mailReply = await replies[0];
      for (let i = 0; i < rcpts.length; i++) rcptReplies[i] = await replies[i + 1];
      dataReply = await replies[rcpts.length + 1];
      if (dataReply.code === 354 && (!accepted(mailReply) || !rcptReplies.some(accepted))) {
        // RFC 2920 §3.1: a server that lets DATA through after refusing MAIL or every
        // recipient gets an empty message, ended at once.
        wire.write('.\r\n');
        await wire.expect('data-done');
        clean = true;
        return settle();
      }
    } else {
      mailReply = await wire.command(mail, 'mail');
      if (accepted(mailReply)) {
        for (let i = 0; i < rcpts.length; i++) rcptReplies[i] = await wire.command(rcptCommand(rcpts[i].address, rcpts[i].dsn, caps), 'rcpt');
        if (rcptReplies.some(accepted)) dataReply = await wire.command('DATA', 'data-init');
      }
    }
    if (dataReply?.code !== 354) return settle();
    await sendBody(wire, req.body());
    if (req.lmtp) {
      // RFC 2033 §4.2: one reply per accepted recipient, often all in one write; every
      // waiter is in place before the first reply is read.
      const pending = rcpts.map((_, i) => (accepted(rcptReplies[i]) ? wire.expect('data-done') : undefined));
      for (const p of pending) p?.catch(() => undefined);
      for (let i = 0; i < rcpts.length; i++) finals[i] = await pending[i];
    } else {
      const final = await wire.expect('data-done');
      for (let i = 0; i < rcpts.length; i++) finals[i] = final;
    }
    clean = true;
    return settle();
  } catch (err) {
    const failure =
      err instanceof WireFailure ? err : new WireFailure(localError(`cannot read the message from the queue: ${(err as Error).message}`), 'local');
    // A local failure mid-body leaves the server holding half a message: the session must end without the dot.
    wire.destroy(failure);
    if (!mailReply) return { recipients: [], delivered: false, clean: false, stale: failure.reply, ...(failure.kind === 'protocol' ? { protocolError: true } : {}) };
    return settle(failure.reply, failure.kind === 'protocol');
  }
}

async function sendBody(wire: SmtpWire, body: Readable | Buffer): Promise<void> {
  if (Buffer.isBuffer(body)) {
    wire.write(dotStuffed(body), `<message body, ${body.length} octets>`);
    return;
  }
  const stuffer = new DotStuffer();
  body.on('error', (err) => stuffer.destroy(err));
  body.pipe(stuffer);
  try {
    await wire.writeStream(stuffer);
  } finally {
    // pipe() leaves the queue file open when the session fails mid-body: close it.
    if (!body.readableEnded) body.destroy();
  }
}
