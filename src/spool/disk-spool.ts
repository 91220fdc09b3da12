import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { decodeEntry, encodeEntry } from './entry-codec.js';
import { DirSync, fsyncDir, spoolError, writeFileSynced } from './durable-fs.js';
import { BodyWriter } from './body-writer.js';
import type { EntryDraft, IncomingMessage, QueueEntry, RecoveryReport, Spool } from './types.js';

/**
 * The queue directory:
 *   tmp/      files being written; anything here at start is a leftover and is removed
 *   msg/      message bodies, one per accepted message, shared by its entries
 *   entries/  one small JSON file per entry: envelope and delivery state
 *   corrupt/  entries that could not be read, kept for the operator
 *
 * Acceptance writes the body and the entries to tmp/, fsyncs them, renames the entries
 * into entries/ and fsyncs that directory, and renames the body into msg/ last: the
 * body's rename is the commit point. An entry without its body is therefore an
 * acceptance that never completed (no 250 was sent) and recovery removes it.
 */
export class DiskSpool implements Spool {
  private readonly tmpDir: string;
  private readonly msgDir: string;
  private readonly entryDir: string;
  private readonly corruptDir: string;
  /** Live entries per message, so that the body goes with the last one. */
  private readonly liveEntries = new Map<string, number>();
  private sequence = 0;
  private readonly entryDirSync: DirSync;
  private readonly msgDirSync: DirSync;

  constructor(readonly root: string) {
    this.tmpDir = join(root, 'tmp');
    this.msgDir = join(root, 'msg');
    this.entryDir = join(root, 'entries');
    this.corruptDir = join(root, 'corrupt');
    this.entryDirSync = new DirSync(this.entryDir);
    this.msgDirSync = new DirSync(this.msgDir);
  }

  async open(): Promise<RecoveryReport> {
    for (const dir of [this.root, this.tmpDir, this.msgDir, this.entryDir, this.corruptDir]) await mkdir(dir, { recursive: true });
    const leftovers = await readdir(this.tmpDir);
    for (const name of leftovers) await rm(join(this.tmpDir, name), { force: true, recursive: true });

    const bodies = new Set(await readdir(this.msgDir));
    const entries: QueueEntry[] = [];
    const corrupt: RecoveryReport['corrupt'] = [];
    let removedIncomplete = 0;
    for (const name of await readdir(this.entryDir)) {
      const path = join(this.entryDir, name);
      if (!name.endsWith('.json')) {
        corrupt.push({ file: name, error: 'not an entry file' });
        await rename(path, join(this.corruptDir, name));
        continue;
      }
      let entry: QueueEntry;
      try {
        entry = decodeEntry(await readFile(path, 'utf8'));
        if (`${entry.id}.json` !== name) throw new Error(`file name does not match entry id ${entry.id}`);
      } catch (err) {
        corrupt.push({ file: name, error: (err as Error).message });
        await rename(path, join(this.corruptDir, name));
        continue;
      }
      if (!bodies.has(entry.messageId)) {
        await unlink(path);
        removedIncomplete++;
        continue;
      }
      entries.push(entry);
      this.liveEntries.set(entry.messageId, (this.liveEntries.get(entry.messageId) ?? 0) + 1);
    }
    let removedOrphanBodies = 0;
    for (const body of bodies) {
      if (!this.liveEntries.has(body)) {
        await unlink(join(this.msgDir, body));
        removedOrphanBodies++;
      }
    }
    await Promise.all([fsyncDir(this.entryDir), fsyncDir(this.msgDir), fsyncDir(this.corruptDir)]);
    return { entries, corrupt, removedIncomplete, removedTemporary: leftovers.length, removedOrphanBodies };
  }

  private newMessageId(): string {
    // Time first so that ids sort roughly by arrival; random bits so that two nodes never collide.
    this.sequence = (this.sequence + 1) % 1296;
    return (Date.now().toString(36) + this.sequence.toString(36).padStart(2, '0') + randomBytes(5).toString('hex')).toUpperCase();
  }

  async receive(): Promise<IncomingMessage> {
    const messageId = this.newMessageId();
    const bodyTmp = join(this.tmpDir, `${messageId}.body`);
    const body = new BodyWriter(bodyTmp);
    body.on('error', () => undefined); // surfaced by commit(); an unhandled error would crash the daemon
    const tmpFiles = [bodyTmp];
    const cleanup = async () => {
      // Wait for the handle to close so that the unlink comes after the create.
      if (!body.closed) {
        // Not events.once(): a destroyed stream with writes pending emits 'error' before 'close'.
        const closed = new Promise<void>((resolve) => body.once('close', () => resolve()));
        body.destroy();
        await closed;
      }
      await Promise.all(tmpFiles.map((f) => unlink(f).catch(() => undefined)));
    };
    return {
      messageId,
      body,
      commit: async (drafts: readonly EntryDraft[], now: number) => {
        try {
          if (!body.writableEnded) body.end();
          await finished(body, { cleanup: false });
          await body.sync();
          const entries: QueueEntry[] = drafts.map((d, i) => ({
            ...d,
            recipients: d.recipients.map((r) => ({ ...r })),
            id: `${messageId}.${i + 1}`,
            messageId,
            queuedAt: now,
            size: body.size,
            attempts: 0,
            tempFailures: 0,
            nextAttemptAt: now,
          }));
          await Promise.all(
            entries.map((entry) => {
              const tmp = join(this.tmpDir, `${entry.id}.json`);
              tmpFiles.push(tmp);
              return writeFileSynced(tmp, join(this.entryDir, `${entry.id}.json`), encodeEntry(entry));
            }),
          );
          await this.entryDirSync.sync();
          await rename(bodyTmp, join(this.msgDir, messageId));
          await this.msgDirSync.sync();
          body.destroy();
          this.liveEntries.set(messageId, entries.length);
          return entries;
        } catch (err) {
          // Entries already renamed into place have no body: remove them so nothing half-accepted lingers.
          for (let i = 1; i <= drafts.length; i++) await unlink(join(this.entryDir, `${messageId}.${i}.json`)).catch(() => undefined);
          await cleanup();
          throw spoolError(err);
        }
      },
      abort: cleanup,
    };
  }

  async update(entry: QueueEntry): Promise<void> {
    const tmp = join(this.tmpDir, `${entry.id}.${randomBytes(4).toString('hex')}.json`);
    try {
      await writeFileSynced(tmp, join(this.entryDir, `${entry.id}.json`), encodeEntry(entry));
      await this.entryDirSync.sync();
    } catch (err) {
      throw spoolError(err);
    }
  }

  async remove(entry: QueueEntry): Promise<void> {
    await unlink(join(this.entryDir, `${entry.id}.json`)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw spoolError(err);
    });
    await this.entryDirSync.sync();
    const left = (this.liveEntries.get(entry.messageId) ?? 1) - 1;
    if (left > 0) {
      this.liveEntries.set(entry.messageId, left);
      return;
    }
    this.liveEntries.delete(entry.messageId);
    await unlink(join(this.msgDir, entry.messageId)).catch(() => undefined);
  }

  readBody(entry: QueueEntry): Readable {
    return createReadStream(join(this.msgDir, entry.messageId));
  }

  async close(): Promise<void> {
    // Every write is awaited by its caller; nothing is buffered here.
  }
}
