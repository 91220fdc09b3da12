import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SmtpReply } from '../../src/core/index.js';
import { generateDsn } from '../../src/dsn/index.js';
import type { DsnEvent } from '../../src/dsn/index.js';
import { TestMx } from '../helpers/mx-server.js';
import { startPostfixInstance } from '../helpers/postfix.js';
import { requireRoot } from '../helpers/root.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { tempDir } from '../helpers/temp-dir.js';
import { REPO_ROOT } from '../helpers/tern-process.js';

/**
 * The same failures reported by a real Postfix (Debian's package) and by Tern's generator,
 * both read by Sisimai: each of Tern's reports must get the reason class Postfix's gets.
 * Postfix here relays through transport_maps (no DNS): to a test MX that rejects or
 * defers, to a host with nothing listening, and to a name that does not resolve; with
 * maximal_queue_lifetime=0 a deferral is returned at once, as an expiration.
 */

const PL = join(REPO_ROOT, 'test/helpers/dsn-sisimai.pl');
const MX_HOST = '127.0.0.151';
const DOWN_HOST = '127.0.0.152';
const PORT = 2598;
const LONG = `permfail-${'x'.repeat(51)}`;

interface Found {
  recipient: string;
  status: string;
  reason: string;
}

function sisimai(file: string): Found[] {
  return (JSON.parse(execFileSync('perl', [PL, file], { encoding: 'utf8' })) as { found: Found[] }).found;
}

const id = (flag: '-u' | '-g') => Number(execFileSync('id', [flag, 'postfix'], { encoding: 'utf8' }).trim());

describe("Tern's reports and Postfix's, as Sisimai classifies them", () => {
  const dir = tempDir('tern-pf-dsn-');
  const mx = new TestMx(MX_HOST);
  let etc = '';
  const postfix = new Map<string, Found>();

  before(async () => {
    requireRoot('Comparing with a real Postfix');
    assert.doesNotThrow(() => execFileSync('perl', ['-MSisimai', '-e', '1'], { stdio: 'ignore' }), 'Sisimai is needed: apt-get install libsisimai-perl (.ci/run installs it)');
    await mx.start();
    mkdirSync(join(dir, 'mail'));
    chownSync(join(dir, 'mail'), id('-u'), id('-g'));
    etc = await startPostfixInstance(dir, PORT, [
      'myhostname = mta.pf.test',
      'virtual_mailbox_domains = src.test',
      `virtual_mailbox_base = ${join(dir, 'mail')}`,
      'virtual_mailbox_maps = static:inbox/',
      `virtual_uid_maps = static:${id('-u')}`,
      `virtual_gid_maps = static:${id('-g')}`,
      `transport_maps = inline:{dest.test=smtp:[${MX_HOST}]:${mx.port}, down.test=smtp:[${DOWN_HOST}]:25, gone.test=smtp:gone.invalid}`,
      'smtp_dns_support_level = disabled',
      'smtp_host_lookup = native',
      'maximal_queue_lifetime = 0',
      'bounce_queue_lifetime = 0',
    ]);
    const sends = [['permfail-a@dest.test'], ['tempfail-e@dest.test'], ['u@down.test'], ['u@gone.test'], [`${LONG}@dest.test`]];
    for (const to of sends) await sendMail({ port: PORT, from: 'app@src.test', to, body: message('parity') });
    const box = join(dir, 'mail', 'inbox', 'new');
    const deadline = Date.now() + 60000;
    const files = () => {
      try {
        return readdirSync(box);
      } catch {
        return [];
      }
    };
    while (files().length < sends.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    for (const f of files()) for (const found of sisimai(join(box, f))) postfix.set(found.recipient, found);
  });
  after(async () => {
    if (etc) execFileSync('postfix', ['-c', etc, 'stop'], { stdio: 'ignore' });
    await mx.stop();
  });

  const at = new Date('2026-03-01T10:00:00Z');
  const REMOTE = { name: 'mx.dest.test', address: MX_HOST };
  const cases: { name: string; recipient: string; kind: DsnEvent['kind']; reply: SmtpReply; reason: string }[] = [
    { name: 'a 5xx at RCPT', recipient: 'permfail-a@dest.test', kind: 'bounce', reply: { code: 550, enhanced: '5.1.1', text: 'No such user here', remote: REMOTE }, reason: 'userunknown' },
    { name: 'expiration after 451 4.2.1', recipient: 'tempfail-e@dest.test', kind: 'expiration', reply: { code: 451, enhanced: '4.2.1', text: 'Mailbox busy, try later', remote: REMOTE }, reason: 'suspend' },
    { name: 'expiration after refused connections', recipient: 'u@down.test', kind: 'expiration', reply: { code: 451, enhanced: '4.4.1', text: `cannot connect to ${DOWN_HOST} [${DOWN_HOST}]:25: ECONNREFUSED` }, reason: 'expired' },
    { name: 'retries used up after refused connections', recipient: 'u@down.test', kind: 'bounce', reply: { code: 451, enhanced: '4.4.1', text: `cannot connect to ${DOWN_HOST} [${DOWN_HOST}]:25: ECONNREFUSED` }, reason: 'expired' },
    { name: 'a domain that does not exist', recipient: 'u@gone.test', kind: 'bounce', reply: { code: 550, enhanced: '5.1.2', text: 'domain gone.test does not exist (NXDOMAIN)' }, reason: 'hostunknown' },
    { name: 'a 60-character local part', recipient: `${LONG}@dest.test`, kind: 'bounce', reply: { code: 550, enhanced: '5.1.1', text: 'No such user here', remote: REMOTE }, reason: 'userunknown' },
  ];
  // Not here: a null MX (Postfix would need DNS; both say 5.1.10, Sisimai notaccept), and
  // delay warnings (Postfix's delay_warning_time counts in hours).

  for (const c of cases) {
    it(`${c.name}: the reason class of Postfix's report`, () => {
      const theirs = postfix.get(c.recipient);
      assert.ok(theirs, `Postfix reported ${c.recipient}`);
      assert.equal(theirs.reason, c.reason, "Sisimai's class for Postfix's report");
      const event: DsnEvent = {
        kind: c.kind,
        messageId: 'ORIG',
        sender: 'app@src.test',
        arrival: at,
        now: at,
        smtpUtf8: false,
        recipients: [{ address: c.recipient, reply: c.reply, lastAttempt: at }],
      };
      const dsn = generateDsn(
        { enableBounce: true, enableExpiration: true, includeOriginal: 'HeadersOnly', reportingMta: { type: 'dns', name: 'mta.src.test' }, stableContent: true, me: 'mta.src.test', pid: 1 },
        event,
        { bytes: Buffer.from('From: app@src.test\r\nSubject: parity\r\n\r\nx\r\n'), complete: true },
      )!;
      const file = join(dir, `${c.name.replace(/\W+/g, '-')}.eml`);
      writeFileSync(file, dsn.bytes);
      const ours = sisimai(file);
      assert.deepEqual(ours.map((f) => [f.recipient, f.reason]), [[c.recipient, c.reason]], `Sisimai reads Tern's report as ${c.reason}, as Postfix's`);
    });
  }
});
