import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { waitForPort } from './wait-for-port.js';
import { tempDir } from './temp-dir.js';
import { join } from 'node:path';
import { makeCert } from './certs.js';

const postfixId = (flag: '-u' | '-g') => Number(execFileSync('id', [flag, 'postfix'], { encoding: 'utf8' }).trim());

/**
 * Starts a Postfix of its own in `dir` (Debian's package, nothing of /etc/postfix used
 * but master.cf as a template): `dir/etc` holds main.cf (the common settings, then
 * `mainCf`), `dir/spool` the queue, `dir/data` its data; smtpd listens on
 * 127.0.0.1:<port> and nothing is chrooted. Resolves once the port answers; returns
 * the config_directory (for `postfix -c … stop`).
 */
export async function startPostfixInstance(dir: string, port: number, mainCf: readonly string[]): Promise<string> {
  const etc = join(dir, 'etc');
  // mkdtemp makes 0700; Postfix's own processes run as postfix and must get through.
  chmodSync(dir, 0o755);
  for (const d of ['etc', 'spool', 'data']) mkdirSync(join(dir, d), { recursive: true });
  chownSync(join(dir, 'data'), postfixId('-u'), postfixId('-g'));
  writeFileSync(
    join(etc, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${join(dir, 'spool')}`,
      `data_directory = ${join(dir, 'data')}`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mydestination =',
      'mynetworks = 127.0.0.0/8',
      ...mainCf,
      '',
    ].join('\n'),
  );
  // Debian's master.cf, with smtpd on our port and nothing chrooted (the temp tree has no chroot).
  copyFileSync('/etc/postfix/master.cf', join(etc, 'master.cf'));
  const master = readFileSync(join(etc, 'master.cf'), 'utf8')
    .replace(/^smtp\s+inet\s+.*$/m, `127.0.0.1:${port} inet n - n - - smtpd`)
    .replace(/^([a-z]+\s+(?:unix|unix-dgram|fifo)\s+[-ny]\s+[-ny]\s+)y\s/gm, '$1n ');
  writeFileSync(join(etc, 'master.cf'), master);
  execFileSync('postfix', ['-c', etc, 'start'], { stdio: 'ignore' });
  await waitForPort('127.0.0.1', port, 'postfix', 15000);
  return etc;
}

/**
 * A real Postfix (Debian's package, installed by .ci/run) as a receiving MX, in its own
 * config_directory under a temp folder: smtpd on 127.0.0.1:<port> with STARTTLS and a
 * certificate made at test time, delivering every recipient of its domain to one Maildir.
 */
export class TestPostfix {
  readonly dir = tempDir('tern-postfix-');
  readonly cert = makeCert('mx.pf.test', ['mx.pf.test']);

  constructor(
    readonly domain: string,
    readonly port: number,
  ) {}

  async start(): Promise<void> {
    mkdirSync(join(this.dir, 'mail'));
    chownSync(join(this.dir, 'mail'), postfixId('-u'), postfixId('-g'));
    const etc = join(this.dir, 'etc');
    mkdirSync(etc);
    writeFileSync(join(etc, 'key.pem'), this.cert.key);
    writeFileSync(join(etc, 'cert.pem'), this.cert.cert);
    await startPostfixInstance(this.dir, this.port, [
      'myhostname = mx.pf.test',
      `virtual_mailbox_domains = ${this.domain}`,
      `virtual_mailbox_base = ${join(this.dir, 'mail')}`,
      'virtual_mailbox_maps = static:inbox/',
      `virtual_uid_maps = static:${postfixId('-u')}`,
      `virtual_gid_maps = static:${postfixId('-g')}`,
      `smtpd_tls_cert_file = ${join(etc, 'cert.pem')}`,
      `smtpd_tls_key_file = ${join(etc, 'key.pem')}`,
      'smtpd_tls_security_level = may',
      'smtpd_tls_received_header = yes',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'message_size_limit = 52428800',
      'virtual_mailbox_limit = 0',
    ]);
  }

  /** Every message delivered to the Maildir, raw. */
  messages(): Buffer[] {
    const box = join(this.dir, 'mail', 'inbox', 'new');
    let names: string[] = [];
    try {
      names = readdirSync(box);
    } catch {
      return [];
    }
    return names.map((n) => readFileSync(join(box, n)));
  }

  async waitFor(count: number, timeoutMs = 30000): Promise<Buffer[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages().length < count) {
      if (Date.now() > deadline) throw new Error(`Postfix has ${this.messages().length}/${count} messages`);
      await new Promise((r) => setTimeout(r, 200));
    }
    return this.messages();
  }

  stop(): void {
    try {
      execFileSync('postfix', ['-c', join(this.dir, 'etc'), 'stop'], { stdio: 'ignore' });
    } catch {
      // already stopped
    }
  }
}
