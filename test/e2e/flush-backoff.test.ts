import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import { message, sendMail } from '../helpers/smtp-client.js';
import { REPO_ROOT, is } from '../helpers/tern-process.js';
import type { TernProcess } from '../helpers/tern-process.js';

const DEAD = '127.0.0.113';
const LIVE = '127.0.0.114';
const DOMAINS = ['flush-one.test', 'hangup.test', 'resume.test'];

/**
 * Issue 14.1: an operator routes a domain to a dead host, mail piles up behind the
 * destination's backoff, the route is fixed, and flush, SIGHUP or resume must try the
 * destination at once (as postqueue -f does), not when the backoff (10 min here) ends.
 */
describe('flush, SIGHUP and resume override a dead destination’s backoff', () => {
  let world: World;
  let tern: TernProcess;
  const routes = new Map(DOMAINS.map((d) => [d, DEAD]));

  const cli = (...args: string[]) => {
    const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tern'), ...args, '--api', tern.api], { encoding: 'utf8', timeout: 15000 });
    return { code: res.status, out: res.stdout, err: res.stderr };
  };
  const writeRoutes = () => writeFileSync(join(tern.configDir, 'routes.ini'), [...routes].map(([d, host]) => `[${d}]\nhost=${host}\nport=${world.port}\n`).join(''));
  const reloads = () => tern.records.filter((r) => r.msg === 'config reloaded').length;

  /** Two messages stuck behind the backoff: the first failed at the dead host, the second was never tried. */
  async function stuck(domain: string): Promise<void> {
    await sendMail({ port: tern.port, from: 'app@client.test', to: [`first@${domain}`], body: message('first') });
    await tern.waitFor(is('TransientFailure', `first@${domain}`));
    await sendMail({ port: tern.port, from: 'app@client.test', to: [`second@${domain}`], body: message('second') });
    // The first one's retry (1 s) comes due meanwhile and waits as well.
    await new Promise((r) => setTimeout(r, 1500));
    const tried = tern.dispositions('TransientFailure').filter((r) => String(r.recipient).endsWith(`@${domain}`));
    assert.equal(tried.length, 1, 'nothing more is attempted while the destination is backed off');
  }

  /** The operator fixes the route; the daemon picks the file up by itself. */
  async function fixRoute(domain: string): Promise<void> {
    const before = reloads();
    routes.set(domain, LIVE);
    writeRoutes();
    await tern.waitForCount((r) => r.msg === 'config reloaded', before + 1);
  }

  before(async () => {
    world = await new World({ tls: '127.0.0.112', dead: DEAD, plain: LIVE }).start();
    tern = await world.tern({
      outbound: 'temp_fail_intervals=1s*10\ndestination_backoff_min=10m\ndestination_backoff_max=1h',
      files: { 'routes.ini': [...routes].map(([d, host]) => `[${d}]\nhost=${host}\nport=${world.port}\n`).join('') },
    });
  });
  after(async () => {
    await tern?.stop();
    await world?.stop();
  });

  it('tern queue flush --domain tries the destination at once', async () => {
    await stuck('flush-one.test');
    await fixRoute('flush-one.test');
    const flush = cli('queue', 'flush', '--domain', 'flush-one.test');
    assert.equal(flush.code, 0, flush.err);
    assert.equal(flush.out, 'flushed 2 entries\n');
    await tern.waitFor(is('Delivery', 'first@flush-one.test'));
    await tern.waitFor(is('Delivery', 'second@flush-one.test'));
  });

  it('SIGHUP reloads the fixed route and tries every destination at once', async () => {
    await stuck('hangup.test');
    routes.set('hangup.test', LIVE);
    writeRoutes();
    tern.signal('SIGHUP');
    await tern.waitFor(is('Delivery', 'first@hangup.test'));
    await tern.waitFor(is('Delivery', 'second@hangup.test'));
  });

  it('tern domain resume lifts the suspension and the backoff', async () => {
    await stuck('resume.test');
    await fixRoute('resume.test');
    assert.equal(cli('domain', 'suspend', 'resume.test').code, 0);
    const resume = cli('domain', 'resume', 'resume.test');
    assert.equal(resume.code, 0, resume.err);
    assert.match(resume.out, /^resumed \([1-2] entries due again\) resume\.test\n$/);
    await tern.waitFor(is('Delivery', 'second@resume.test'));
    await tern.waitFor(is('Delivery', 'first@resume.test'));
  });
});
