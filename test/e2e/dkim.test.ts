import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import type { TernProcess } from '../helpers/tern-process.js';
import { headerSection, makeDkimKey, publishDkimKey, verifyDkim } from '../helpers/dkim.js';
import type { ReceivedMail } from '../helpers/mx-server.js';

const fieldNames = (m: Buffer) => [...headerSection(m).matchAll(/^([^\s:]+):/gm)].map((x) => x[1].toLowerCase());

/** DKIM signing at intake, end to end: Tern signs, the test MX receives, dkimpy verifies against the test DNS server. */
describe('DKIM signing (dkim.ini) verified by dkimpy', () => {
  let world: World;
  let tern: TernProcess;
  const keys = {
    rsa: makeDkimKey('rsa-sha256'),
    ed: makeDkimKey('ed25519-sha256'),
    simple: makeDkimKey('rsa-sha256'),
    rotated: makeDkimKey('rsa-sha256'),
  };
  let seq = 0;

  /** Sends through Tern to a fresh good.test recipient; resolves with what the MX received. */
  async function roundTrip(body: string | Buffer, opts: { from?: string; eightBit?: boolean } = {}): Promise<{ mail: ReceivedMail; id: string }> {
    const rcpt = `dkim${++seq}@good.test`;
    const res = await sendMail({ port: tern.port, from: opts.from ?? 'app@example.test', to: [rcpt], body, eightBit: opts.eightBit });
    assert.match(res.response, /^250 /);
    const delivery = await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === rcpt, 60000);
    const mail = world.mx.mailbox.find((m) => m.to.includes(rcpt))!;
    return { mail, id: String(delivery.message_id) };
  }

  const reception = (id: string) => tern.waitFor((r) => r.type === 'Reception' && r.id === id);

  before(async () => {
    world = await new World({ tls: '127.0.0.202', dead: '127.0.0.203', plain: '127.0.0.204' }).start();
    publishDkimKey(world.dns, 'example.test', 'rsa2026', keys.rsa);
    publishDkimKey(world.dns, 'example.test', 'ed2026', keys.ed);
    publishDkimKey(world.dns, 'simple.test', 'plain', keys.simple);
    publishDkimKey(world.dns, 'example.test', 'rsa2027', keys.rotated);
    tern = await world.tern({
      files: {
        'example.rsa.pem': keys.rsa,
        'example.ed.pem': keys.ed,
        'simple.pem': keys.simple,
        'rotated.pem': keys.rotated,
        'dkim.ini': [
          '[example.test]', 'selector=rsa2026', 'key=example.rsa.pem', 'algorithm=rsa-sha256',
          '[example.test/ed]', 'selector=ed2026', 'key=example.ed.pem', 'algorithm=ed25519-sha256',
          '[simple.test]', 'selector=plain', 'key=simple.pem', 'canonicalization=simple/simple', '',
        ].join('\n'),
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('signs with RSA and Ed25519 (dual signing, relaxed/relaxed), From over-signed, Received not signed, and dkimpy verifies both', { timeout: 90000 }, async () => {
    const { mail, id } = await roundTrip(message('dual', 'Hello.\r\n\r\nTrailing space and tabs \t \r\n').replace('From: sender@client.test', 'From: "Alice A." <alice@example.test>'));
    const verdicts = await verifyDkim(mail.body, world.dns);
    assert.deepEqual(
      verdicts.map((v) => [v.d, v.s, v.a, v.c, v.ok]).sort(),
      [
        ['example.test', 'ed2026', 'ed25519-sha256', 'relaxed/relaxed', true],
        ['example.test', 'rsa2026', 'rsa-sha256', 'relaxed/relaxed', true],
      ],
      JSON.stringify(verdicts),
    );
    const h = verdicts[0].h.toLowerCase().split(':');
    assert.equal(h.filter((n) => n === 'from').length, 2, 'From is over-signed (RFC 6376 §8.15)');
    assert.ok(!h.includes('received'), 'trace fields are not signed');
    const names = fieldNames(mail.body);
    assert.deepEqual(names.slice(0, 3), ['dkim-signature', 'dkim-signature', 'received'], 'the signatures are prepended, above Tern\'s Received:');
    const rec = await reception(id);
    assert.deepEqual(
      (rec.dkim as { domain: string; selector: string; algorithm: string }[]).map((s) => `${s.domain} ${s.selector} ${s.algorithm}`).sort(),
      ['example.test ed2026 ed25519-sha256', 'example.test rsa2026 rsa-sha256'],
    );
    assert.equal(rec.size, mail.body.length, 'the Reception size counts the signatures, as sent');
  });

  it('signs with simple/simple canonicalization', { timeout: 60000 }, async () => {
    const { mail } = await roundTrip(message('simple canon', 'Body  with  double  spaces \r\n').replace('sender@client.test', 'news@simple.test'), { from: 'news@simple.test' });
    const verdicts = await verifyDkim(mail.body, world.dns);
    assert.deepEqual(verdicts.map((v) => [v.d, v.s, v.c, v.ok]), [['simple.test', 'plain', 'simple/simple', true]], JSON.stringify(verdicts));
  });

  it('signs the real message of a dot-stuffed body (lines starting with a dot) and of an 8-bit body', { timeout: 60000 }, async () => {
    const dots = '.leading dot\r\n..two dots\r\n.\r\n. \r\nend\r\n';
    const { mail } = await roundTrip(message('dots', dots).replace('sender@client.test', 'a@example.test'));
    assert.ok(mail.body.includes('\r\n.leading dot\r\n..two dots\r\n.\r\n'), 'the MX got the un-stuffed lines');
    for (const v of await verifyDkim(mail.body, world.dns)) assert.equal(v.ok, true, JSON.stringify(v));

    const eight = Buffer.concat([
      Buffer.from(message('8bit', '').replace('sender@client.test', 'b@example.test').replace(/\r\n$/, ''), 'latin1'),
      Buffer.from('Grüße aus Köln — ünïcödé, and a Latin-1 byte: ', 'utf8'),
      Buffer.from([0xe9, 0x0d, 0x0a]),
    ]);
    const { mail: m8 } = await roundTrip(eight, { eightBit: true });
    const verdicts = await verifyDkim(m8.body, world.dns);
    assert.equal(verdicts.length, 2);
    for (const v of verdicts) assert.equal(v.ok, true, JSON.stringify(v));
  });

  it('signs a 10 MB message that verifies', { timeout: 180000 }, async () => {
    const line = 'The quick brown fox jumps over the lazy dog, 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMN\r\n';
    const body = line.repeat(Math.ceil((10 * 1024 * 1024) / line.length));
    const { mail } = await roundTrip(message('ten megabytes', body).replace('sender@client.test', 'big@example.test'));
    assert.ok(mail.body.length > 10 * 1024 * 1024);
    const verdicts = await verifyDkim(mail.body, world.dns);
    assert.equal(verdicts.length, 2);
    for (const v of verdicts) assert.equal(v.ok, true, JSON.stringify(v));
  });

  it('a sub-domain signs with its parent domain\'s keys; a domain without a section goes out unsigned', { timeout: 60000 }, async () => {
    const { mail } = await roundTrip(message('sub').replace('sender@client.test', 'x@news.example.test'));
    const verdicts = await verifyDkim(mail.body, world.dns);
    assert.deepEqual(verdicts.map((v) => [v.d, v.ok]), [['example.test', true], ['example.test', true]]);

    const { mail: plain, id } = await roundTrip(message('unsigned'));
    assert.ok(!fieldNames(plain.body).includes('dkim-signature'));
    assert.equal((await reception(id)).dkim, undefined);
  });

  it('mail already signed with the same d= and s= is not signed twice, and both signatures still verify', { timeout: 60000 }, async () => {
    const { mail: first } = await roundTrip(message('resend').replace('sender@client.test', 'c@example.test'));
    // The signed message, handed to Tern again (a client that signs for itself).
    const { mail: again, id } = await roundTrip(first.body);
    const verdicts = await verifyDkim(again.body, world.dns);
    assert.equal(verdicts.length, 2, JSON.stringify(verdicts));
    for (const v of verdicts) assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal((await reception(id)).dkim, undefined, 'Tern made no signature of its own');
  });

  it('a message whose headers cannot be read is queued (250) and delivered unsigned, with a log record', { timeout: 60000 }, async () => {
    const broken = 'this line is not a header field\r\nTo: rcpt@good.test\r\nSubject: no from\r\n\r\nbody\r\n';
    const { mail, id } = await roundTrip(broken);
    assert.ok(!fieldNames(mail.body).includes('dkim-signature'));
    const warn = await tern.waitFor((r) => r.msg === 'DKIM: message queued unsigned' && r.id === id);
    assert.equal((warn.reply as { code: number }).code, 250);
    assert.match(JSON.stringify(warn.problems), /From/);
    // A header section past the signer's bound (512 KiB): accepted, unsigned, told.
    const filler = Array.from({ length: 9000 }, (_, i) => `X-Filler-${i}: ${'f'.repeat(60)}`).join('\r\n');
    const { mail: big, id: bigId } = await roundTrip(message('huge header', 'body', [filler]).replace('sender@client.test', 'h@example.test'));
    assert.ok(!fieldNames(big.body).includes('dkim-signature'));
    await tern.waitFor((r) => r.msg === 'DKIM: message queued unsigned' && r.id === bigId);
  });

  it('a retry sends the signature made at acceptance (signed once)', { timeout: 60000 }, async () => {
    const rcpt = `flaky${++seq}@good.test`;
    await sendMail({ port: tern.port, from: 'r@example.test', to: [rcpt], body: message('retry').replace('sender@client.test', 'r@example.test') });
    const failure = await tern.waitFor((r) => r.type === 'TransientFailure' && r.recipient === rcpt, 30000);
    await tern.waitFor((r) => r.type === 'Delivery' && r.recipient === rcpt, 60000);
    const mail = world.mx.mailbox.find((m) => m.to.includes(rcpt))!;
    const verdicts = await verifyDkim(mail.body, world.dns);
    assert.equal(verdicts.length, 2);
    for (const v of verdicts) assert.equal(v.ok, true, JSON.stringify(v));
    const rec = await reception(String(failure.message_id));
    assert.equal((rec.dkim as unknown[]).length, 2);
  });

  it('rotation: a reload with a new selector signs new mail with it; mail signed before still verifies', { timeout: 90000 }, async () => {
    const { mail: before } = await roundTrip(message('before rotation').replace('sender@client.test', 'k@example.test'));
    writeFileSync(
      join(tern.configDir, 'dkim.ini'),
      ['[example.test]', 'selector=rsa2027', 'key=rotated.pem', '[example.test/ed]', 'selector=ed2026', 'key=example.ed.pem', 'algorithm=ed25519-sha256', ''].join('\n'),
    );
    tern.signal('SIGHUP');
    await tern.waitFor((r) => r.msg === 'config reloaded' && JSON.stringify(r.changed).includes('[example.test].selector'), 30000);
    const { mail: afterRotation, id } = await roundTrip(message('after rotation').replace('sender@client.test', 'k@example.test'));
    const now = await verifyDkim(afterRotation.body, world.dns);
    assert.deepEqual(now.map((v) => [v.s, v.ok]).sort(), [['ed2026', true], ['rsa2027', true]], JSON.stringify(now));
    const old = await verifyDkim(before.body, world.dns);
    assert.deepEqual(old.map((v) => [v.s, v.ok]).sort(), [['ed2026', true], ['rsa2026', true]], JSON.stringify(old));
    const rec = await reception(id);
    assert.ok((rec.dkim as { selector: string }[]).some((s) => s.selector === 'rsa2027'));
  });

  it('a reload naming a key file that is not there keeps the old config (and its keys), naming the file', { timeout: 60000 }, async () => {
    writeFileSync(join(tern.configDir, 'dkim.ini'), ['[example.test]', 'selector=gone', 'key=dkim/missing.pem', ''].join('\n'));
    tern.signal('SIGHUP');
    const failed = await tern.waitFor((r) => r.msg === 'config reload failed; keeping the previous config' && String(r.error).includes('missing.pem'), 30000);
    assert.match(String(failed.error), /dkim\.ini/);
    const { mail } = await roundTrip(message('after failed reload').replace('sender@client.test', 'z@example.test'));
    const verdicts = await verifyDkim(mail.body, world.dns);
    assert.deepEqual(verdicts.map((v) => [v.s, v.ok]).sort(), [['ed2026', true], ['rsa2027', true]]);
  });
});
