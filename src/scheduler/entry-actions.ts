import type { AdminAction, AdminActionKind, AdminRequest, Clock } from '../core/index.js';
import type { Logger } from '../log/index.js';
import type { QueueEntry, Spool } from '../spool/index.js';
import { bounceEntry } from './apply-outcome.js';
import type { QueueIndex, QueueItem } from './queue-index.js';
import { QueueAdminError } from './queue-operations.js';
import type { AttemptSettler } from './settle.js';

export interface EntryActionDeps {
  readonly queue: QueueIndex;
  /** Entries with an attempt or an action under way; an action marks its entry here too. */
  readonly busy: Set<string>;
  readonly spool: Spool;
  readonly settler: AttemptSettler;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The whole entry of an item; rejects with the spool's error when it is gone from disk. */
  load(item: QueueItem): Promise<QueueEntry>;
  isGone(err: unknown): boolean;
  /** Something changed: start what is due. */
  wake(): void;
  /** Each action done, once its change is on disk: the disposition sink records it. */
  onAdmin(event: AdminAction, entry: QueueEntry): void;
}

/** An action asked for by no one in particular (a caller inside Tern). */
const INTERNAL: AdminRequest = { client: 'internal' };

/** The operator's actions on one entry (postsuper -h, -H, -d, and a bounce on demand), each recorded. */
export class EntryActions {
  constructor(private readonly deps: EntryActionDeps) {}

  /** An entry already held is left as it is, with no record. */
  hold(id: string, by: AdminRequest = INTERNAL): Promise<QueueEntry> {
    return this.exclusive(id, async (entry) => {
      if (entry.held) return;
      entry.held = true;
      await this.deps.spool.update(entry).catch((err: unknown) => {
        // Not on disk, so not so in memory either: a restart would undo it.
        entry.held = false;
        throw err;
      });
      this.record('AdminHold', entry, by);
    });
  }

  /** An entry that is not held is left as it is, with no record. */
  release(id: string, by: AdminRequest = INTERNAL): Promise<QueueEntry> {
    return this.exclusive(id, async (entry, item) => {
      if (!entry.held) return;
      const due = item.nextAttemptAt;
      entry.held = false;
      this.deps.queue.setDue(item, this.deps.clock.now());
      await this.deps.spool.update(entry).catch((err: unknown) => {
        entry.held = true;
        this.deps.queue.setDue(item, due);
        throw err;
      });
      this.record('AdminRelease', entry, by);
    });
  }

  remove(id: string, by: AdminRequest = INTERNAL): Promise<QueueEntry> {
    return this.exclusive(id, async (entry) => {
      await this.deps.spool.remove(entry);
      this.deps.queue.delete(id);
      this.record('AdminRemove', entry, by);
    });
  }

  /** The AdminBounce record comes first, then one Bounce per recipient (and the report), as for any bounce. */
  bounce(id: string, by: AdminRequest = INTERNAL, text = 'Message bounced by the operator'): Promise<QueueEntry> {
    return this.exclusive(id, (entry) => {
      this.record('AdminBounce', entry, by);
      return this.deps.settler.finish(entry, bounceEntry(entry, this.deps.clock.now(), { code: 550, enhanced: '5.0.0', text }), true);
    });
  }

  private record(kind: AdminActionKind, entry: QueueEntry, admin: AdminRequest): void {
    const recipients = entry.recipients.filter((r) => r.state !== 'delivered' && r.state !== 'failed').map((r) => r.address);
    this.deps.onAdmin({ kind, entry, recipients, admin, at: new Date(this.deps.clock.now()) }, entry);
  }

  /** Runs an action with the entry marked busy, so that no attempt starts under it. */
  private async exclusive(id: string, action: (entry: QueueEntry, item: QueueItem) => Promise<void>): Promise<QueueEntry> {
    const { queue, busy } = this.deps;
    const item = queue.get(id);
    if (!item) throw new QueueAdminError('not_found', `no queue entry ${id}`);
    if (busy.has(id)) throw new QueueAdminError('in_flight', `entry ${id} is being delivered right now; try again shortly`);
    busy.add(id);
    try {
      const entry = await this.deps.load(item).catch((err: unknown) => {
        if (!this.deps.isGone(err)) throw err;
        queue.delete(id);
        throw new QueueAdminError('not_found', `no queue entry ${id}`);
      });
      queue.attach(item, entry);
      await action(entry, item);
      return entry;
    } finally {
      busy.delete(id);
      queue.detach(item);
      if (queue.has(id)) queue.schedule(item);
      this.deps.wake();
    }
  }
}
