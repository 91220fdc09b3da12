import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { Disposition, Reception, RecipientDisposition } from '../../../src/core/index.js';
import { DispositionSink, createLogger, dispositionRecord } from '../../../src/log/index.js';
import type { DispositionRecord } from '../../../src/log/index.js';
import { HookRunner } from '../../../src/hooks/index.js';
import { TernMetrics } from '../../../src/control/index.js';

/** A logger whose lines are kept, parsed, without pino's `time`. */
function capture(level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level,
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          const { time: _time, ...rest } = JSON.parse(line) as Record<string, unknown>;
          lines.push(rest);
        }
        done();
      },
    }) as never,
  });
  return { logger, lines };
}

const entry = { id: 'M1.1', messageId: 'M1', headerMessageId: '<a1@src.test>', sender: 'app@src.test', domain: 'dest.test', size: 42, queuedAt: Date.UTC(2026, 0, 1) };
const at = new Date(Date.UTC(2026, 0, 1, 0, 0, 5));
const delivery: RecipientDisposition = {
  kind: 'Delivery',
  entry,
  recipient: 'u@dest.test',
  attempt: 1,
  reply: { code: 250, enhanced: '2.0.0', text: 'ok', remote: { name: 'mx.dest.test', address: '192.0.2.25' } },
  peer: { name: 'mx.dest.test', address: '192.0.2.25', port: 25 },
  tls: true,
  tlsInfo: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
  at,
};
const deferral: RecipientDisposition = { ...delivery, kind: 'TransientFailure', recipient: 'v@dest.test', reply: { code: 451, text: 'later' }, nextAttemptAt: new Date(at.getTime() + 60_000) };
const expiry: RecipientDisposition = { kind: 'Expiration', entry: { ...entry, headerMessageId: undefined }, recipient: 'w@dest.test', attempt: 0, reply: { code: 551, enhanced: '5.4.7', text: 'expired' }, tls: false, at };
const reception: Reception = {
  kind: 'Reception',
  messageId: 'M1',
  headerMessageId: '<a1@src.test>',
  envelope: { sender: 'app@src.test', recipients: [{ address: 'u@dest.test' }, { address: 'v@dest.test' }], dsn: {}, smtpUtf8: false, bodyType: '7bit' },
  reply: { code: 250, enhanced: '2.0.0', text: 'Queued as M1' },
  size: 42,
  at: new Date(entry.queuedAt),
  reason: { kind: 'smtp', client: { address: '192.0.2.7', helo: 'client.example', user: undefined, tls: true } },
};
const report: Reception = {
  ...reception,
  messageId: 'R1',
  headerMessageId: '<r1@tern.test>',
  envelope: { sender: '', recipients: [{ address: 'app@src.test' }], dsn: {}, smtpUtf8: false, bodyType: '7bit' },
  reply: { code: 250, enhanced: '2.0.0', text: 'Queued as R1' },
  reason: { kind: 'report', report: { kind: 'bounce', originalId: 'M1.1', originalMessageId: 'M1', recipients: ['u@dest.test'] } },
};

const emptyQueue = { all: () => [][Symbol.iterator](), isInFlight: () => false, load: async () => undefined, size: 0, suspensions: () => [], backedOffDomains: () => [] };
const plugin = (seen: DispositionRecord[]) => new HookRunner([{ name: 'seen', plugin: { log_disposition: (r) => void seen.push(r) } }], capture().logger);
const counters = async (metrics: TernMetrics) =>
  (await metrics.registry.metrics()).split('\n').filter((l) => /^tern_(messages_received|dispositions|replies|bytes|dsn_generated|queue_time_seconds_count)/.test(l));

describe('DispositionSink', () => {
  it("writes each disposition as today's log record, field for field and in the same order", () => {
    const { logger, lines } = capture();
    const sink = new DispositionSink(logger);
    for (const e of [reception, report, delivery, deferral, expiry]) sink.emit(e);
    const base = '"level":"info","service":"tern"';
    const recipient = (rest: string) =>
      `{${base},"id":"M1.1","message_id":"M1",${rest}`;
    assert.deepEqual(lines.map((l) => JSON.stringify(l)), [
      `{${base},"type":"Reception","id":"M1","message_id":"M1","message_id_header":"<a1@src.test>","sender":"app@src.test","recipients":["u@dest.test","v@dest.test"],"response":{"code":250,"enhanced_code":"2.0.0","content":"Queued as M1"},"size":42,"queued_at":"2026-01-01T00:00:00.000Z","client":{"address":"192.0.2.7","helo":"client.example","tls":true},"msg":"Reception"}`,
      `{${base},"type":"Reception","id":"R1","message_id":"R1","message_id_header":"<r1@tern.test>","sender":"","recipients":["app@src.test"],"response":{"code":250,"enhanced_code":"2.0.0","content":"Queued as R1"},"size":42,"queued_at":"2026-01-01T00:00:00.000Z","report":{"kind":"bounce","original_id":"M1.1","original_message_id":"M1","recipients":["u@dest.test"]},"msg":"Reception"}`,
      recipient(`"message_id_header":"<a1@src.test>","sender":"app@src.test","domain":"dest.test","attempt":1,"peer":{"name":"mx.dest.test","address":"192.0.2.25","port":25},"tls":true,"tls_version":"TLSv1.3","tls_cipher":"TLS_AES_256_GCM_SHA384","size":42,"queued_at":"2026-01-01T00:00:00.000Z","timestamp":"2026-01-01T00:00:05.000Z","type":"Delivery","recipient":"u@dest.test","response":{"code":250,"enhanced_code":"2.0.0","content":"ok"},"msg":"Delivery"}`),
      recipient(`"message_id_header":"<a1@src.test>","sender":"app@src.test","domain":"dest.test","attempt":1,"peer":{"name":"mx.dest.test","address":"192.0.2.25","port":25},"tls":true,"tls_version":"TLSv1.3","tls_cipher":"TLS_AES_256_GCM_SHA384","size":42,"queued_at":"2026-01-01T00:00:00.000Z","timestamp":"2026-01-01T00:00:05.000Z","type":"TransientFailure","recipient":"v@dest.test","response":{"code":451,"enhanced_code":null,"content":"later"},"next_attempt_at":"2026-01-01T00:01:05.000Z","msg":"TransientFailure"}`),
      recipient(`"message_id_header":null,"sender":"app@src.test","domain":"dest.test","attempt":0,"peer":null,"tls":false,"tls_version":null,"tls_cipher":null,"size":42,"queued_at":"2026-01-01T00:00:00.000Z","timestamp":"2026-01-01T00:00:05.000Z","type":"Expiration","recipient":"w@dest.test","response":{"code":551,"enhanced_code":"5.4.7","content":"expired"},"msg":"Expiration"}`),
    ]);
  });

  it('hands plugins the record as logged and metrics the event', async () => {
    const { logger, lines } = capture();
    const seen: DispositionRecord[] = [];
    const hooks = plugin(seen);
    const metrics = new TernMetrics(emptyQueue, () => 0);
    const sink = new DispositionSink(logger);
    sink.subscribe({ record: (r) => void hooks.logDisposition(r) });
    sink.subscribe({ event: (e) => metrics.onDisposition(e) });
    for (const e of [reception, report, delivery, deferral]) sink.emit(e);
    assert.deepEqual(
      seen.map((r) => JSON.stringify(r)),
      lines.map(({ level: _l, service: _s, msg: _m, ...record }) => JSON.stringify(record)),
    );
    const text = await counters(metrics);
    assert.ok(text.includes('tern_messages_received_total 2'), 'a report is a message received');
    assert.ok(text.includes('tern_dsn_generated_total{kind="bounce"} 1'));
    assert.ok(text.includes('tern_bytes_total{direction="in"} 84'));
    assert.ok(text.includes('tern_dispositions_total{outcome="Delivery"} 1'));
    assert.ok(text.includes('tern_dispositions_total{outcome="TransientFailure"} 1'));
    assert.ok(!text.some((l) => l.includes('outcome="Reception"')), 'a Reception is not a recipient disposition');
    assert.ok(text.includes('tern_replies_total{code="250"} 1'));
    assert.ok(text.includes('tern_queue_time_seconds_count 1'));
  });

  it('renaming every log field changes the log line only: plugins still hear of each disposition, metrics count the same', async () => {
    const renamed = (e: Disposition) => Object.fromEntries(Object.entries(dispositionRecord(e)).map(([k, v]) => [`x_${k}`, v])) as unknown as DispositionRecord;
    const run = async (render?: (e: Disposition) => DispositionRecord) => {
      const { logger, lines } = capture();
      const seen: DispositionRecord[] = [];
      const hooks = plugin(seen);
      const metrics = new TernMetrics(emptyQueue, () => 0);
      const sink = new DispositionSink(logger, render);
      sink.subscribe({ record: (r) => void hooks.logDisposition(r) });
      sink.subscribe({ event: (e) => metrics.onDisposition(e) });
      for (const e of [reception, report, delivery, deferral, expiry]) sink.emit(e);
      return { lines, seen, metrics: await counters(metrics) };
    };
    const today = await run();
    const other = await run(renamed);
    assert.deepEqual(other.metrics, today.metrics);
    assert.equal(other.seen.length, 5);
    assert.deepEqual(other.lines.map((l) => l.msg), ['Reception', 'Reception', 'Delivery', 'TransientFailure', 'Expiration']);
    assert.equal(other.lines[2].x_recipient, 'u@dest.test');
  });

  it('a listener that throws costs neither the log line nor the other listeners', () => {
    const { logger, lines } = capture();
    const sink = new DispositionSink(logger);
    const heard: string[] = [];
    sink.subscribe({ event: () => { throw new Error('boom'); } });
    sink.subscribe({ event: (e) => void heard.push(e.kind) });
    sink.emit(delivery);
    assert.deepEqual(heard, ['Delivery']);
    assert.deepEqual(lines.map((l) => l.msg), ['Delivery', 'disposition listener failed']);
    assert.equal(lines[1].id, 'M1.1');
  });

  it('plugins and metrics hear of every disposition whatever the log level', () => {
    const { logger, lines } = capture('error');
    const heard: string[] = [];
    const sink = new DispositionSink(logger);
    sink.subscribe({ record: (r) => void heard.push(r.type), event: (e) => void heard.push(e.kind) });
    sink.emit(delivery);
    assert.deepEqual(lines, []);
    assert.deepEqual(heard, ['Delivery', 'Delivery']);
  });
});
