import type { Readable } from 'node:stream';
import type { Clock, DeliveryOutcome, SmtpReply } from '../core/index.js';
import type { TernConfig } from '../config/index.js';
import { generateDsn } from '../dsn/index.js';
import type { DsnEvent, DsnKind, DsnRecipient, OriginalMessage } from '../dsn/index.js';
import type { DispositionRecord, Logger } from '../log/index.js';
import { logDisposition } from '../log/index.js';
import { domainOf } from '../smtp/index.js';
import type { QueueEntry, Spool } from '../spool/index.js';

// Enough to hold the header section of any sane message when only the headers are returned.
const HEAD_BYTES = 256 * 1024;

const KIND_OF: Partial<Record<DispositionRecord['type'], DsnKind>> = { Bounce: 'bounce', Expiration: 'expiration', Delivery: 'success', TransientFailure: 'delay' };

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

/**
 * Turns one attempt's dispositions into delivery status notifications and queues them
 * like any message, from the null sender, to the original sender. One report per kind
 * of event: every recipient that failed in this attempt is listed in the same bounce.
 */
export class DsnReporter {
  constructor(
    private config: TernConfig,
    private readonly spool: Spool,
    private readonly enqueue: (entries: QueueEntry[]) => void,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly onReport: (kind: DsnKind) => void = () => undefined,
  ) {}

  updateConfig(config: TernConfig): void {
    this.config = config;
  }

  /**
   * Never throws: a report that cannot be made is logged, and the original's fate stands.
   * `outcome` is the attempt's, when there was one: it says whether the next hop took over
   * reporting (DSN advertised) and whether delivery was final (LMTP).
   */
  async report(entry: QueueEntry, records: readonly DispositionRecord[], outcome?: DeliveryOutcome): Promise<void> {
    if (entry.sender === '' || records.length === 0) return;
    const byKind = new Map<DsnKind, DsnRecipient[]>();
    for (const record of records) {
      const kind = KIND_OF[record.type];
      const rcpt = entry.recipients.find((r) => r.address === record.recipient);
      if (!kind || !rcpt || !this.due(kind, entry, rcpt, outcome)) continue;
      // The recipient's last reply still says who gave it (reply.remote); the record's copy does
      // not. For an expiration it is the last attempt's reply, the record's the expiry's.
      const reply: SmtpReply = rcpt.lastReply ?? { code: record.response.code, enhanced: record.response.enhanced_code ?? undefined, text: record.response.content };
      byKind.set(kind, [
        ...(byKind.get(kind) ?? []),
        { address: rcpt.address, orcpt: rcpt.dsn?.orcpt, notify: rcpt.dsn?.notify, reply, lastAttempt: new Date(record.timestamp ?? this.clock.now()) },
      ]);
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

    const incoming = await this.spool.receive();
    incoming.body.end(dsn.bytes);
    let queued: QueueEntry[];
    try {
      queued = await incoming.commit(
        [{ domain: domainOf(entry.sender), sender: '', recipients: [{ address: entry.sender, state: 'pending' }], dsn: {}, smtpUtf8: dsn.smtpUtf8, bodyType: dsn.eightBit ? '8bitmime' : '7bit' }],
        now,
      );
    } catch (err) {
      await incoming.abort();
      throw err;
    }
    if (kind === 'delay') {
      for (const r of entry.recipients) if (dsn.reported.includes(r.address)) r.delayReported = true;
      await this.spool.update(entry);
    }
    logDisposition(this.logger, {
      type: 'Reception',
      id: incoming.messageId,
      message_id: incoming.messageId,
      sender: '',
      recipients: [entry.sender],
      response: { code: 250, enhanced_code: '2.0.0', content: `Queued as ${incoming.messageId}` },
      size: dsn.bytes.length,
      queued_at: new Date(now).toISOString(),
      report: { kind, original_id: entry.id, original_message_id: entry.messageId, recipients: dsn.reported },
    });
    this.onReport(kind);
    this.enqueue(queued);
  }
}
