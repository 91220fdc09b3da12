import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { RawSmtp, message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';
import { hashPassword } from '../../src/listener/index.js';

/** The value of one sample (`name{labels}` or `name` alone), undefined when absent. */
function sample(text: string, name: string, labels?: string): number | undefined {
  const key = labels === undefined ? `${name} ` : `${name}{${labels}} `;
  const line = text.split('\n').find((l) => l.startsWith(key));
  return line === undefined ? undefined : Number(line.slice(key.length));
}

/**
 * Prometheus' own linter, as an operator's CI would run it. Debian's `prometheus` package
 * has it (.ci/run installs it); a machine without it fails this test rather than skip it.
 */
function promtool(text: string): { status: number | null; output: string } {
  const res = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (res.error) assert.fail(`promtool is needed (Debian's prometheus package; .ci/run installs it): ${res.error.message}`);
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

describe('metrics: what an operator pages on, clean by promtool', () => {
  let world: World;
  let tern: TernProcess;
  const scrape = async () => {
    const res = await fetch(`${tern.api}/metrics`);
    assert.equal(res.status, 200);
    return res.text();
  };

  before(async () => {
    world = await new World({ tls: '127.0.0.112', dead: '127.0.0.113', plain: '127.0.0.114' }).start();
    world.dns
      .add('dead.test', { type: 'MX', preference: 10, exchange: 'mx.dead.test' })
      .add('mx.dead.test', { type: 'A', data: '127.0.0.113' })
      .add('held.test', { type: 'MX', preference: 10, exchange: 'mx.dead.test' });
    world.dns.servfail.add('broken.test');
    tern = await world.tern({
      outbound: 'temp_fail_intervals=1h*10\ndestination_backoff_min=1h\ndestination_backoff_max=1h',
      files: {
        relay_acl_allow: '127.0.0.1/32\n',
        auth_users: `app:${await hashPassword('right password')}\n`,
        'tls_key.pem': world.cert.key,
        'tls_cert.pem': world.cert.cert,
        'dsn.ini': 'enable_bounce=false\n',
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('passes promtool at start, with every known series at zero and the build named', async () => {
    const text = await scrape();
    const lint = promtool(text);
    assert.equal(lint.status, 0, lint.output);
    for (const [name, labels] of [
      ['tern_rejections_total', 'reason="relay_denied"'],
      ['tern_rejections_total', 'reason="auth_failed"'],
      ['tern_auth_failures_total', 'reason="auth_failed"'],
      ['tern_dispositions_total', 'outcome="Bounce"'],
      ['tern_deliveries_total', 'transport="tls"'],
      ['tern_deliveries_total', 'transport="plaintext"'],
      ['tern_destination_deferrals_total', 'domain="other"'],
      ['tern_destination_bounces_total', 'domain="other"'],
      ['tern_dns_failures_total', 'type="MX",reason="servfail"'],
      ['tern_dsn_generated_total', 'kind="bounce"'],
      ['tern_config_reloads_total', 'result="failed"'],
      ['tern_queue_entries', 'state="held"'],
      ['tern_queue_oldest_entry_age_seconds', 'state="deferred"'],
    ] as const) {
      assert.equal(sample(text, name, labels), 0, `${name}{${labels}}`);
    }
    assert.equal(sample(text, 'tern_destinations_backoff'), 0);
    assert.equal(sample(text, 'tern_destinations_suspended'), 0);
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const info = text.split('\n').find((l) => l.startsWith('tern_build_info{'));
    assert.ok(info, 'tern_build_info');
    assert.ok(info.includes(`version="${version}"`) && info.includes(`node_version="${process.version}"`) && / 1$/.test(info), info);
    // Node's own metrics under the names the usual dashboards query, no doubled prefix.
    assert.ok(sample(text, 'process_cpu_seconds_total') !== undefined, 'process_cpu_seconds_total');
    assert.ok(text.includes('\n# TYPE nodejs_heap_size_used_bytes gauge\n'), 'nodejs_heap_size_used_bytes');
    assert.doesNotMatch(text, /^tern_process_/m);
  });

  it('counts deliveries by TLS, failures by destination, DNS and AUTH failures, and shows backoff, suspensions, held entries and the spool', async () => {
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['alice@good.test'], body: message('tls') });
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['bob@other.test'], body: message('plain') });
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['tempfail-m1@good.test'], body: message('deferred') });
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['permfail-m2@other.test'], body: message('bounced') });
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['carol@dead.test'], body: message('dead') });
    await sendMail({ port: tern.port, from: 'app@other.test', to: ['dave@broken.test'], body: message('servfail') });
    await Promise.all([
      tern.waitFor(is('Delivery', 'alice@good.test')),
      tern.waitFor(is('Delivery', 'bob@other.test')),
      tern.waitFor(is('TransientFailure', 'tempfail-m1@good.test')),
      tern.waitFor(is('Bounce', 'permfail-m2@other.test')),
      tern.waitFor(is('TransientFailure', 'carol@dead.test')),
      tern.waitFor(is('TransientFailure', 'dave@broken.test')),
    ]);

    // A relay refused, and a wrong password.
    const outsider = await RawSmtp.open(tern.port, '127.0.0.1', '127.0.0.115');
    await outsider.command('EHLO outsider.test');
    await outsider.command('MAIL FROM:<x@outsider.test>');
    assert.match(await outsider.command('RCPT TO:<y@good.test>'), /^550 5\.7\.1 /);
    outsider.close();
    const guesser = await RawSmtp.openTls(tern.port, '127.0.0.116');
    assert.match(await guesser.authPlain('app', 'wrong password'), /^535 5\.7\.8 /);
    guesser.close();
    await tern.waitForCount((r) => r.type === 'Rejection', 2);

    // The deferred entry goes on hold; a destination is suspended.
    const list = (await (await fetch(`${tern.api}/queue?domain=good.test`)).json()) as { entries: { id: string }[] };
    assert.equal(list.entries.length, 1);
    assert.equal((await fetch(`${tern.api}/queue/${list.entries[0].id}/hold`, { method: 'POST' })).status, 200);
    assert.equal((await fetch(`${tern.api}/domains/suspended.test/suspend`, { method: 'POST' })).status, 200);

    const text = await scrape();
    const lint = promtool(text);
    assert.equal(lint.status, 0, lint.output);

    assert.equal(sample(text, 'tern_deliveries_total', 'transport="tls"'), 1);
    assert.equal(sample(text, 'tern_deliveries_total', 'transport="plaintext"'), 1);
    assert.equal(sample(text, 'tern_destination_deferrals_total', 'domain="good.test"'), 1);
    assert.equal(sample(text, 'tern_destination_deferrals_total', 'domain="dead.test"'), 1);
    assert.equal(sample(text, 'tern_destination_deferrals_total', 'domain="broken.test"'), 1);
    assert.equal(sample(text, 'tern_destination_bounces_total', 'domain="other.test"'), 1);
    assert.ok(sample(text, 'tern_dns_failures_total', 'type="MX",reason="servfail"')! >= 1, 'the SERVFAIL for broken.test');
    assert.equal(sample(text, 'tern_rejections_total', 'reason="relay_denied"'), 1);
    assert.equal(sample(text, 'tern_rejections_total', 'reason="auth_failed"'), 1);
    assert.equal(sample(text, 'tern_auth_failures_total', 'reason="auth_failed"'), 1);

    assert.equal(sample(text, 'tern_destinations_backoff'), 1, 'dead.test: its only host refuses');
    assert.equal(sample(text, 'tern_destinations_suspended'), 1);
    assert.equal(sample(text, 'tern_queue_entries', 'state="held"'), 1);
    assert.equal(sample(text, 'tern_queue_entries', 'state="deferred"'), 2, 'dead.test and broken.test');
    assert.ok(sample(text, 'tern_queue_oldest_entry_age_seconds', 'state="held"')! > 0);
    assert.ok(sample(text, 'tern_queue_oldest_entry_age_seconds', 'state="deferred"')! > 0);
    assert.equal(sample(text, 'tern_queue_oldest_entry_age_seconds', 'state="in-flight"'), 0, 'nothing in flight: 0, not absent');
    assert.ok(sample(text, 'tern_spool_bytes')! > 0, 'three messages wait on disk');
  });
});
