import type { Readable } from 'node:stream';
import type { Clock, DeliveryOutcome, RecipientDisposition } from '../core/index.js';
import { configHandle } from '../config/index.js';
import type { ConfigHandle, ConfigInput } from '../config/index.js';
import { generateDsn } from '../dsn/index.js';
import type { DsnEvent, DsnKind, DsnRecipient, OriginalMessage } from '../dsn/index.js';
import { messageIdHeader } from '../intake/index.js';
import type { MessageIntake } from '../intake/index.js';
import type { Logger } from '../log/index.js';
import type { QueueEntry, Spool } from '../spool/index.js';

// Enough to hold the header section of any sane message when only the headers are returned.
const HEAD_BYTES = 256 * 1024;

const KIND_OF: Record<RecipientDisposition['kind'], DsnKind> = { Bounce: 'bounce', Expiration: 'expiration', Delivery: 'success', TransientFailure: 'delay' };

async function readAtMost(stream: Readable, limit: number): Promise<OriginalMessage> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > limit) {
      stream.destroy();
      return { bytes: Buffer.concat(chunks).subarray(0, limit), complete: false };
    }
  }
  return { bytes: Buffer.concat(chunks), complete: true };
}

/** The header section of a message Tern made (CRLF line ends). */
function headerSectionOf(bytes: Buffer): string {
  const end = bytes.indexOf('\r\n\r\n');
  return bytes.subarray(0, end === -1 ? bytes.length : end + 2).toString('utf8');
}

/**
 * Turns one attempt's dispositions into delivery status notifications and queues them
 * through the intake like any message, from the null sender, to the original sender. One
 * report per kind of event: every recipient that failed in this attempt is listed in the
 * same bounce. The scheduler reaches it as its Reporter, which daemon/compose.ts connects.
 */
export class ReportGenerator {
  private readonly configs: ConfigHandle;

  constructor(
    config: ConfigInput,
    /** Reads the original's body. */
    private readonly spool: Pick<Spool, 'bodyStream' | 'update'>,
    private readonly intake: MessageIntake,
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {
    this.configs = configHandle(config);
  }

  /** The config of the moment (dsn.ini, me, the bounce template): each report reads it as it is made. */
  private get config() {
    return this.configs.current;
  }

  /**
   * Never throws: a report that cannot be made is logged, and the original's fate stands.
   * `outcome` is the attempt's, when there was one: it says whether the next hop took over
   * reporting (DSN advertised) and whether delivery was final (LMTP).
   */
  async report(entry: QueueEntry, events: readonly RecipientDisposition[], outcome?: DeliveryOutcome): Promise<void> {
    if (entry.sender === '' || events.length === 0) return;
    const byKind = new Map<DsnKind, DsnRecipient[]>();
    for (const event of events) {
      const kind = KIND_OF[event.kind];
      const rcpt = entry.recipients.find((r) => r.address === event.recipient);
      if (!rcpt || !this.due(kind, entry, rcpt, outcome)) continue;
      // For an expiration the recipient's last reply is the last attempt's (RFC 3464 §2.3.6:
      // the report quotes it), the event's the expiry's.
      const reply = rcpt.lastReply ?? event.reply;
      byKind.set(kind, [...(byKind.get(kind) ?? []), { address: rcpt.address, orcpt: rcpt.dsn?.orcpt, notify: rcpt.dsn?.notify, reply, lastAttempt: event.at }]);
    }
    for (const [kind, recipients] of byKind) {
      try {
        await this.send(kind, entry, recipients, !!outcome?.lmtp);
      } catch (err) {
        this.logger.error({ err: { message: (err as Error).message }, id: entry.id, kind }, 'delivery status notification could not be queued');
      }
    }
  }

  private due(kind: DsnKind, entry: QueueEntry, rcpt: QueueEntry['recipients'][number], outcome?: DeliveryOutcome): boolean {
    // RFC 3461 §5.2.2: NOTIFY went on to a next hop that offers DSN; the success report is its to send.
    if (kind === 'success') return !outcome?.nextHopDsn;
    if (kind !== 'delay') return true;
    const after = this.config.dsn.delay_warning_time;
    return after > 0 && !rcpt.delayReported && this.clock.now() - entry.queuedAt >= after * 1000;
  }

  private async send(kind: DsnKind, entry: QueueEntry, recipients: DsnRecipient[], finalDelivery: boolean): Promise<void> {
    const cfg = this.config;
    const now = this.clock.now();
    const event: DsnEvent = {
      kind,
      messageId: entry.messageId,
      sender: entry.sender,
      envid: entry.dsn.envid,
      ret: entry.dsn.ret,
      arrival: new Date(entry.queuedAt),
      now: new Date(now),
      retryUntil: new Date(entry.queuedAt + cfg.outbound.max_queue_lifetime * 1000),
      smtpUtf8: entry.smtpUtf8,
      finalDelivery,
      recipients,
    };
    const params = {
      enableBounce: cfg.dsn.enable_bounce,
      enableExpiration: cfg.dsn.enable_expiration,
      includeOriginal: cfg.dsn.include_original_message,
      reportingMta: cfg.dsn.reportingMta,
      stableContent: cfg.dsn.stable_content,
      template: cfg.bounceTemplate,
      me: cfg.me,
      pid: process.pid,
    };
    // Decide first with no original, so that a report nobody wants costs no disk read.
    if (!generateDsn({ ...params, includeOriginal: 'No' }, event)) return;
    const original =
      params.includeOriginal === 'No'
        ? undefined
        : await readAtMost(this.spool.bodyStream(entry), params.includeOriginal === 'FullContent' && event.ret !== 'HDRS' ? cfg.dsn.bounce_size_limit : HEAD_BYTES);
    const dsn = generateDsn(params, event, original)!;

    const incoming = await this.intake.receive();
    incoming.body.end(dsn.bytes);
    await this.intake.insert(incoming, {
      envelope: { sender: '', recipients: [{ address: entry.sender }], dsn: {}, smtpUtf8: dsn.smtpUtf8, bodyType: dsn.eightBit ? '8bitmime' : '7bit' },
      headerMessageId: messageIdHeader(headerSectionOf(dsn.bytes)),
      reason: { kind: 'report', report: { kind, originalId: entry.id, originalMessageId: entry.messageId, recipients: dsn.reported } },
    });
    if (kind === 'delay') {
      for (const r of entry.recipients) if (dsn.reported.includes(r.address)) r.delayReported = true;
      await this.spool.update(entry);
    }
  }
}
