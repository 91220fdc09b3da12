import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { DeliveryOutcome, RecipientDsn, SmtpReply } from '../../../src/core/index.js';
import { systemClock } from '../../../src/core/index.js';
import { loadConfig } from '../../../src/config/index.js';
import { DispositionSink, createLogger } from '../../../src/log/index.js';
import { Intake } from '../../../src/intake/index.js';
import { ReportGenerator } from '../../../src/reports/index.js';
import { RetrySchedule, applyOutcome, expireEntry } from '../../../src/scheduler/index.js';
import { DiskSpool } from '../../../src/spool/index.js';
import type { QueueEntry } from '../../../src/spool/index.js';
import { tempDir } from '../../helpers/temp-dir.js';
import { writeConfig } from '../../helpers/tern-process.js';

const silent = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) as never });
const MX = { name: 'mx.dest.test', address: '192.0.2.25' };

/** A real spool, intake and reporter; the reports it queues are read back as bytes. */
async function setup() {
  const spool = new DiskSpool(join(tempDir('tern-dsn-rep-'), 'queue'));
  await spool.open();
  const config = loadConfig(writeConfig({ 'dsn.ini': 'enable_bounce=true\nenable_expiration=true\ninclude_original_message=No\n' }));
  const queued: QueueEntry[] = [];
  const intake = new Intake({ spool, dispositions: new DispositionSink(silent), clock: systemClock, alwaysSplit: () => false });
  intake.handTo({ add: (entries) => queued.push(...entries) });
  const reporter = new ReportGenerator(config, spool, intake, silent, systemClock);
  const original = async (dsn?: RecipientDsn): Promise<QueueEntry> => {
    const incoming = await spool.receive();
    incoming.body.end('Subject: t\r\n\r\nx\r\n');
    const [entry] = await incoming.commit([{ domain: 'dest.test', sender: 'app@src.test', recipients: [{ address: 'u@dest.test', state: 'pending', dsn }], dsn: {}, smtpUtf8: false, bodyType: '7bit' }], Date.now());
    return entry;
  };
  const reports = async (): Promise<string[]> => {
    const texts: string[] = [];
    for (const e of queued.splice(0)) {
      const chunks: Buffer[] = [];
      for await (const c of spool.bodyStream(e)) chunks.push(c as Buffer);
      texts.push(Buffer.concat(chunks).toString());
    }
    return texts;
  };
  return { reporter, original, reports };
}

const outcome = (reply: SmtpReply, result: 'delivered' | 'deferred' | 'failed', extra: Partial<DeliveryOutcome> = {}): DeliveryOutcome => ({
  tls: false,
  recipients: [{ address: 'u@dest.test', result, reply }],
  ...extra,
});
const ctx = { now: Date.now(), schedule: new RetrySchedule([3600], 13), lifetime: 7200 };

describe('ReportGenerator', () => {
  it('reports success as relayed to a next hop without DSN, delivered after LMTP, and not at all when the next hop offers DSN', async () => {
    const { reporter, original, reports } = await setup();
    const ok: SmtpReply = { code: 250, enhanced: '2.0.0', text: 'queued', remote: MX };
    for (const [extra, expected] of [
      [{}, /Action: relayed\r\n/],
      [{ nextHopDsn: false }, /Action: relayed\r\n/],
      [{ lmtp: true }, /Action: delivered\r\n/],
      [{ nextHopDsn: true }, undefined],
    ] as const) {
      const entry = await original({ notify: ['SUCCESS'] });
      const o = outcome(ok, 'delivered', extra);
      await reporter.report(entry, applyOutcome(entry, o, ctx).events, o);
      const sent = await reports();
      if (!expected) assert.deepEqual(sent, [], 'RFC 3461 §5.2.2: the next hop reports');
      else {
        assert.equal(sent.length, 1);
        assert.match(sent[0], expected);
        assert.match(sent[0], /Remote-MTA: dns; mx\.dest\.test\r\nDiagnostic-Code: smtp; 250 2\.0\.0 queued\r\n/);
      }
    }
  });

  it('an expiration quotes the last remote reply, with status 5.4.7 and that MTA, and makes up no reply', async () => {
    const { reporter, original, reports } = await setup();
    const entry = await original();
    const busy: SmtpReply = { code: 450, enhanced: '4.2.1', text: 'mailbox busy', remote: MX };
    const o = outcome(busy, 'deferred');
    const { events } = applyOutcome(entry, o, { ...ctx, lifetime: 1 });
    assert.equal(events[0].kind, 'Expiration');
    assert.deepEqual(entry.recipients[0].lastReply, busy, 'the expiry keeps the last reply');
    await reporter.report(entry, events, o);
    const [report] = await reports();
    assert.match(report, /Action: failed\r\nStatus: 5\.4\.7 \(delivery time expired\)\r\nRemote-MTA: dns; mx\.dest\.test\r\nDiagnostic-Code: smtp; 450 4\.2\.1 mailbox busy\r\n/);
    assert.doesNotMatch(report, /\b551 /);
  });

  it("an expiration after replies Tern made itself names no Remote-MTA and no smtp diagnostic", async () => {
    const { reporter, original, reports } = await setup();
    const entry = await original();
    const refused: SmtpReply = { code: 451, enhanced: '4.4.1', text: 'cannot connect to mx.dest.test [192.0.2.25]:25: ECONNREFUSED' };
    applyOutcome(entry, outcome(refused, 'deferred', { peer: { ...MX, port: 25 }, unreachable: true }), ctx);
    // Expired later, without an attempt (the queue sweep).
    await reporter.report(entry, expireEntry(entry, Date.now()));
    const [report] = await reports();
    assert.match(report, /Status: 5\.4\.7 \(delivery time expired\)\r\nDiagnostic-Code: X-Tern; delivery time expired; last error: cannot connect to\r\n mx\.dest\.test \[192\.0\.2\.25\]:25: ECONNREFUSED\r\n/);
    assert.match(report, /\r\nLast error: 451 4\.4\.1 cannot connect to mx\.dest\.test /);
    assert.doesNotMatch(report, /Remote-MTA|smtp;|While communicating/);
  });
});
