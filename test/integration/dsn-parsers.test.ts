import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SmtpReply } from '../../src/core/index.js';
import { generateDsn } from '../../src/dsn/index.js';
import type { DsnEvent, DsnParams, DsnRecipient } from '../../src/dsn/index.js';
import { tempDir } from '../helpers/temp-dir.js';
import { REPO_ROOT } from '../helpers/tern-process.js';

/**
 * Every kind of report Tern makes, read by the parsers that list managers and mail
 * services run: Python's standard `email` package (both policies) and Sisimai (Debian's
 * libsisimai-perl, installed by .ci/run). The reports come from Tern's real generator.
 */

const PY = join(REPO_ROOT, 'test/helpers/dsn-email.py');
const PL = join(REPO_ROOT, 'test/helpers/dsn-sisimai.pl');
const dir = tempDir('tern-dsn-parsers-');

const params: DsnParams = {
  enableBounce: true,
  enableExpiration: true,
  includeOriginal: 'FullContent',
  reportingMta: { type: 'dns', name: 'mta.src.test' },
  stableContent: true,
  me: 'mta.src.test',
  pid: 1,
};
const MX = { name: 'mx.dest.test', address: '192.0.2.25' };
const at = new Date('2026-03-01T10:00:00Z');
const later = new Date('2026-03-01T14:00:00Z');
const ORIGINAL = Buffer.from('From: app@src.test\r\nTo: u@dest.test\r\nSubject: hello\r\nMessage-ID: <orig-1@src.test>\r\n\r\nhello\r\n');
const ORIGINAL_8BIT = Buffer.from('From: app@src.test\r\nTo: u@dest.test\r\nSubject: caf\u00e9\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nd\u00e9j\u00e0 vu\r\n');
const ORIGINAL_UTF8 = Buffer.from('From: app@src.test\r\nTo: \u7528\u6237@dest.test\r\nSubject: \u4f60\u597d\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\u4f60\u597d\r\n');

const remote = (code: number, enhanced: string, text: string): SmtpReply => ({ code, enhanced, text, remote: MX });
const own = (code: number, enhanced: string, text: string): SmtpReply => ({ code, enhanced, text });
const rcpt = (address: string, reply: SmtpReply, extra: Partial<DsnRecipient> = {}): DsnRecipient => ({ address, reply, lastAttempt: later, ...extra });

interface Case {
  readonly name: string;
  readonly event: DsnEvent;
  readonly original?: Buffer;
  /** What Sisimai must find, per recipient: its status and reason class. */
  readonly sisimai: Readonly<Record<string, { status: string; reason: string; action?: string }>>;
}

const event = (kind: DsnEvent['kind'], recipients: DsnRecipient[], extra: Partial<DsnEvent> = {}): DsnEvent => ({
  kind,
  messageId: 'ORIG1',
  sender: 'app@src.test',
  arrival: at,
  now: later,
  smtpUtf8: false,
  recipients,
  ...extra,
});

const LONG_LOCAL = 'a-very-long-local-part-of-sixty-characters-for-the-parsers-xy';
const unknown = remote(550, '5.1.1', 'No such user here');

const CASES: Case[] = [
  {
    name: 'bounce',
    event: event('bounce', [rcpt('nobody@dest.test', unknown)]),
    sisimai: { 'nobody@dest.test': { status: '5.1.1', reason: 'userunknown' } },
  },
  {
    name: 'multi-recipient bounce',
    event: event('bounce', [
      rcpt('nobody@dest.test', unknown),
      rcpt('full@dest.test', remote(552, '5.2.2', 'Mailbox full'), { orcpt: 'rfc822;Full@Dest.test' }),
      rcpt('spam@dest.test', remote(550, '5.7.1', 'Message rejected as spam by content filter')),
    ], { envid: 'ENV-7' }),
    sisimai: {
      'nobody@dest.test': { status: '5.1.1', reason: 'userunknown' },
      'full@dest.test': { status: '5.2.2', reason: 'mailboxfull' },
      'spam@dest.test': { status: '5.7.1', reason: 'spamdetected' },
    },
  },
  {
    // Postfix's report of the same failure (expired after 450 4.2.1): Sisimai says suspend.
    name: 'expiration after a remote 450',
    event: event('expiration', [rcpt('busy@dest.test', remote(450, '4.2.1', '<busy@dest.test>: Recipient address rejected: mailbox temporarily disabled, try again later'))]),
    sisimai: { 'busy@dest.test': { status: '4.2.1', reason: 'suspend' } },
  },
  {
    name: 'expiration after connections were refused',
    event: event('expiration', [rcpt('u@down.test', own(451, '4.4.1', 'cannot connect to mx.down.test [192.0.2.26]:25: ECONNREFUSED'))]),
    sisimai: { 'u@down.test': { status: '5.4.7', reason: 'expired' } },
  },
  {
    name: 'expiration without any reply',
    event: event('expiration', [rcpt('u@held.test', own(551, '5.4.7', 'Delivery time expired: message queued at 2026-03-01T10:00:00.000Z was still undelivered after 4.0 h'))]),
    sisimai: { 'u@held.test': { status: '5.4.7', reason: 'expired' } },
  },
  {
    name: 'delay',
    event: event('delay', [rcpt('slow@dest.test', remote(451, '4.3.0', 'Temporary lookup failure'))], { retryUntil: new Date('2026-03-06T10:00:00Z') }),
    sisimai: { 'slow@dest.test': { status: '4.4.7', reason: 'expired', action: 'delayed' } },
  },
  {
    // Postfix after maximal_queue_lifetime with refused connections: 4.4.1, X-Postfix; connect to …: Connection refused.
    name: 'retries used up',
    event: event('bounce', [rcpt('u@down.test', own(451, '4.4.1', 'cannot connect to mx.down.test [192.0.2.26]:25: ECONNREFUSED'))]),
    sisimai: { 'u@down.test': { status: '4.4.1', reason: 'expired' } },
  },
  {
    // Postfix: 5.4.4, X-Postfix; Host or domain name not found: hostunknown.
    name: 'NXDOMAIN',
    event: event('bounce', [rcpt('u@gone.test', own(550, '5.1.2', 'domain gone.test does not exist (NXDOMAIN)'))]),
    sisimai: { 'u@gone.test': { status: '5.1.2', reason: 'hostunknown' } },
  },
  {
    // Postfix: 5.1.10, X-Postfix; Domain … does not accept mail (nullMX): notaccept.
    name: 'null MX',
    event: event('bounce', [rcpt('u@null.test', own(556, '5.1.10', 'domain null.test accepts no mail (null MX, RFC 7505)'))]),
    sisimai: { 'u@null.test': { status: '5.1.10', reason: 'notaccept' } },
  },
  {
    name: 'success (relayed)',
    event: event('success', [rcpt('ok@dest.test', remote(250, '2.0.0', 'Ok: queued as 4XyZ'), { notify: ['SUCCESS'] })]),
    sisimai: { 'ok@dest.test': { status: '2.0.0', reason: 'delivered', action: 'relayed' } },
  },
  {
    name: 'a 60-character local part',
    event: event('bounce', [rcpt(`${LONG_LOCAL}@dest.test`, remote(550, '5.1.1', `<${LONG_LOCAL}@dest.test>: Recipient address rejected: User unknown in virtual mailbox table`))]),
    sisimai: { [`${LONG_LOCAL}@dest.test`]: { status: '5.1.1', reason: 'userunknown' } },
  },
  {
    name: '8-bit original',
    event: event('bounce', [rcpt('nobody@dest.test', unknown)]),
    original: ORIGINAL_8BIT,
    sisimai: { 'nobody@dest.test': { status: '5.1.1', reason: 'userunknown' } },
  },
  {
    // Sisimai 4 takes the original's sender from its From: (or the report's To:) and accepts
    // ASCII addresses only: with a UTF-8 sender it drops every record, Postfix's reports too.
    name: 'SMTPUTF8 original',
    event: event('bounce', [rcpt('nobody@dest.test', unknown)], { smtpUtf8: true }),
    original: ORIGINAL_UTF8,
    sisimai: { 'nobody@dest.test': { status: '5.1.1', reason: 'userunknown' } },
  },
  {
    // RFC 6533: a UTF-8 address is of type utf-8, in message/global-delivery-status. Sisimai 4
    // reads neither that type nor UTF-8 addresses: it finds nothing, and nothing wrong.
    name: 'SMTPUTF8 original, UTF-8 recipient',
    event: event('bounce', [rcpt('\u7528\u6237@dest.test', remote(550, '5.1.1', 'Benutzer \u00fcberpr\u00fcfen: unbekannt'), { orcpt: 'utf-8;\u7528\u6237@Dest.test' })], { smtpUtf8: true }),
    original: ORIGINAL_UTF8,
    sisimai: {},
  },
];

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`);
  }
}

type Fields = [string, string][];
interface EmailView {
  defects: string[];
  parts: string[];
  status: { type: string; cte: string | null; params: string[]; blocks: Fields[]; defects: string[] } | null;
}

const field = (block: Fields, name: string) => block.find(([n]) => n === name)?.[1];

describe('delivery status notifications, as bounce parsers read them', () => {
  before(() => {
    assert.doesNotThrow(() => run('python3', ['-c', 'import email.policy']), 'python3 with its standard email package is needed');
    assert.doesNotThrow(() => run('perl', ['-MSisimai', '-MJSON::PP', '-e', '1']), "Sisimai is needed: apt-get install libsisimai-perl (.ci/run installs it)");
  });

  for (const c of CASES) {
    it(`${c.name}: Python's email reads complete recipient blocks, Sisimai the right status and reason`, () => {
      const dsn = generateDsn(params, c.event, { bytes: c.original ?? ORIGINAL, complete: true });
      assert.ok(dsn, 'a report is made');
      const file = join(dir, `${c.name.replace(/\W+/g, '-')}.eml`);
      writeFileSync(file, dsn.bytes);

      const views = JSON.parse(run('python3', [PY, file])) as { compat32: EmailView; default: EmailView };
      assert.deepEqual(views.default, views.compat32, 'both policies read the same');
      const view = views.default;
      const utf8 = c.event.recipients.some((r) => /[^\x00-\x7f]/.test(r.address + r.reply.text));
      assert.deepEqual(view.defects, []);
      assert.ok(view.status, 'a delivery-status part');
      assert.deepEqual(view.status.params, [], 'no parameters (no charset) on the status part');
      // RFC 3464 §2.1: 7bit; RFC 6533 §6.2: UTF-8 goes in message/global-delivery-status, 8bit.
      assert.equal(view.status.type, utf8 ? 'message/global-delivery-status' : 'message/delivery-status');
      assert.equal(view.status.cte, utf8 ? '8bit' : null);
      assert.deepEqual(view.status.defects, []);
      const [perMessage, ...blocks] = view.status.blocks;
      assert.equal(field(perMessage, 'reporting-mta'), 'dns; mta.src.test');
      assert.equal(field(perMessage, 'arrival-date'), 'Sun, 1 Mar 2026 10:00:00 +0000');
      if (c.event.envid) assert.equal(field(perMessage, 'original-envelope-id'), c.event.envid);
      assert.equal(blocks.length, c.event.recipients.length, 'one block per recipient');
      blocks.forEach((block, i) => {
        const r = c.event.recipients[i];
        const names = block.map(([n]) => n);
        const expected = [
          ...(r.orcpt ? ['original-recipient'] : []),
          'final-recipient', 'action', 'status',
          ...(r.reply.remote ? ['remote-mta'] : []),
          'diagnostic-code', 'last-attempt-date',
          ...(c.event.kind === 'delay' ? ['will-retry-until'] : []),
        ];
        assert.deepEqual(names, expected, `every field of ${r.address}`);
        const type = /[^\x00-\x7f]/.test(r.address) ? 'utf-8' : 'rfc822';
        assert.equal(field(block, 'final-recipient'), `${type};${r.address}`);
        if (r.orcpt) assert.equal(field(block, 'original-recipient'), r.orcpt);
        const reply = r.reply;
        const expiredFirst = c.event.kind === 'expiration' && !reply.remote && reply.enhanced !== '5.4.7' ? 'delivery time expired; last error: ' : '';
        const diagnostic = reply.remote ? `smtp; ${reply.code} ${reply.enhanced} ${reply.text}` : `X-Tern; ${expiredFirst}${reply.text}`;
        assert.equal(field(block, 'diagnostic-code'), diagnostic, 'Diagnostic-Code intact');
        if (reply.remote) assert.equal(field(block, 'remote-mta'), `dns; ${reply.remote.name}`);
      });

      const sisimai = JSON.parse(run('perl', [PL, file])) as { found: { recipient: string; status: string; reason: string; action: string }[] };
      const got = Object.fromEntries(sisimai.found.map((f) => [f.recipient, { status: f.status, reason: f.reason, ...(c.sisimai[f.recipient]?.action ? { action: f.action } : {}) }]));
      assert.deepEqual(got, c.sisimai);
    });
  }
});
