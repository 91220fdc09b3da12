import type { Clock, Disposition, Envelope, InsertReason } from '../core/index.js';
import type { IncomingMessage, QueueEntry, Spool } from '../spool/index.js';
import { splitEnvelope } from './envelope-split.js';
import type { Logger } from '../log/index.js';
import type { BodySigner, SignOutcome } from '../dkim/index.js';
import { signingIncoming } from './signing-body.js';
import type { SigningIncoming } from './signing-body.js';

/** A message whose body has been written, ready to become durable. */
export interface Insertion {
  readonly envelope: Envelope;
  /** The message's Message-ID header (see messageIdHeader); null when it has none. */
  readonly headerMessageId: string | null;
  readonly reason: InsertReason;
}

/** What the listener and the report generator need of the intake. */
export interface MessageIntake {
  /** Starts a message: its body streams into the queue before any entry exists. */
  receive(): Promise<IncomingMessage>;
  /** Makes the message durable, tells its Reception and hands its entries to delivery. */
  insert(incoming: IncomingMessage, message: Insertion): Promise<QueueEntry[]>;
}

/** Where durable entries go: the scheduler. */
export interface EntryTarget {
  add(entries: readonly QueueEntry[]): void;
}

export interface IntakeDeps {
  readonly spool: Pick<Spool, 'receive'>;
  /** Where the Reception goes (the disposition sink: log, plugins, metrics). */
  readonly dispositions: { emit(event: Disposition): void };
  readonly clock: Clock;
  /** outbound.ini `always_split`, as it is now (a reload changes it). */
  readonly alwaysSplit: () => boolean;
  /** Where a fault in recording a Reception, or in signing, is told. */
  readonly logger?: Logger;
  /** A DKIM signer for a new message (config/dkim.ini), or undefined when nothing is signed. */
  readonly dkim?: { start(): BodySigner | undefined };
}

/**
 * The one way into the queue (KumoMTA's QueueManager::insert): mail from SMTP clients and
 * Tern's own reports are split into entries the same way, committed, told as one
 * Reception, and handed to the scheduler. Entries are handed over only once they are on
 * disk, so a 250 (or a report) is never given for a message a crash could lose.
 */
export class Intake implements MessageIntake {
  private target?: EntryTarget;
  /** Messages being received with a signer reading along. */
  private readonly signing = new WeakMap<IncomingMessage, SigningIncoming>();

  constructor(private readonly deps: IntakeDeps) {}

  /**
   * Connects the scheduler. The scheduler reaches the intake through the report generator,
   * so it is connected after both are built, not passed in.
   */
  handTo(target: EntryTarget): void {
    this.target = target;
  }

  async receive(): Promise<IncomingMessage> {
    const spooled = await this.deps.spool.receive();
    // The keys of this moment sign the message, whatever a reload does meanwhile.
    const signer = this.deps.dkim?.start();
    if (!signer) return spooled;
    const signing = signingIncoming(spooled, signer);
    this.signing.set(signing.incoming, signing);
    return signing.incoming;
  }

  /**
   * Signs a message whose bytes have all gone by (RFC 6376 §5): before the commit, so that
   * the signature is stored with the message and a retry sends the same one. Never
   * rejects: a message that cannot be signed is queued unsigned, and a record says why.
   */
  private async sign(incoming: IncomingMessage, message: Insertion): Promise<SignOutcome | undefined> {
    const signing = this.signing.get(incoming);
    if (!signing) return undefined;
    this.signing.delete(incoming);
    // Not every byte reached the spool: commit() reports that, there is nothing to sign.
    if (!(await signing.complete())) {
      signing.discard();
      return undefined;
    }
    let outcome: SignOutcome;
    const fault = signing.faulted();
    try {
      if (fault) {
        signing.discard();
        throw fault;
      }
      outcome = await signing.finish(message.envelope.sender, this.deps.clock.now());
    } catch (err) {
      outcome = { prefix: '', signatures: [], problems: [`signing failed: ${(err as Error).message}`] };
    }
    if (outcome.problems.length) {
      this.deps.logger?.warn(
        {
          id: incoming.messageId,
          message_id_header: message.headerMessageId,
          dkim: outcome.signatures.map((s) => ({ domain: s.domain, selector: s.selector, algorithm: s.algorithm })),
          problems: outcome.problems,
          reply: { code: 250, enhanced: '2.0.0', text: 'queued all the same' },
        },
        outcome.signatures.length ? 'DKIM: message signed in part' : 'DKIM: message queued unsigned',
      );
    }
    return outcome;
  }

  async insert(incoming: IncomingMessage, message: Insertion): Promise<QueueEntry[]> {
    const target = this.target;
    if (!target) {
      await incoming.abort();
      throw new Error('intake not connected to a scheduler');
    }
    const signed = await this.sign(incoming, message);
    const drafts = splitEnvelope(message.envelope, this.deps.alwaysSplit(), message.headerMessageId, signed?.prefix || undefined);
    const now = this.deps.clock.now();
    let entries: QueueEntry[];
    try {
      entries = await incoming.commit(drafts, now);
    } catch (err) {
      // commit() leaves nothing behind; abort() makes sure of it whatever the spool.
      await incoming.abort();
      throw err;
    }
    // Durable now: a fault in recording the Reception (log, metrics) is told, never turned
    // into a 451 for a message that is queued, and the entries still go to delivery.
    try {
      this.deps.dispositions.emit({
        kind: 'Reception',
        messageId: incoming.messageId,
        headerMessageId: message.headerMessageId,
        envelope: message.envelope,
        reply: { code: 250, enhanced: '2.0.0', text: `Queued as ${incoming.messageId}` },
        size: entries[0]?.size ?? 0,
        at: new Date(now),
        reason: message.reason,
        ...(signed?.signatures.length ? { dkim: signed.signatures } : {}),
      });
    } catch (err) {
      this.deps.logger?.error({ err: { message: (err as Error).message }, id: incoming.messageId }, 'Reception not recorded; the message is queued');
    }
    target.add(entries);
    return entries;
  }
}
