import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCert } from './certs.js';

/**
 * A real Postfix (Debian's package, installed by .ci/run) as a receiving MX, in its own
 * config_directory under a temp folder: smtpd on 127.0.0.1:<port> with STARTTLS and a
 * certificate made at test time, delivering every recipient of its domain to one Maildir.
 */
export class TestPostfix {
  readonly dir = mkdtempSync(join(tmpdir(), 'tern-postfix-'));
  readonly cert = makeCert('mx.pf.test', ['mx.pf.test']);

  constructor(
    readonly domain: string,
    readonly port: number,
  ) {}

  private uid(flag: '-u' | '-g'): number {
    return Number(execFileSync('id', [flag, 'postfix'], { encoding: 'utf8' }).trim());
  }

  async start(): Promise<void> {
    const etc = join(this.dir, 'etc');
    // mkdtemp makes 0700; Postfix's own processes run as postfix and must get through.
    chmodSync(this.dir, 0o755);
    for (const d of ['etc', 'spool', 'data', 'mail']) mkdirSync(join(this.dir, d), { recursive: true });
    chownSync(join(this.dir, 'data'), this.uid('-u'), this.uid('-g'));
    chownSync(join(this.dir, 'mail'), this.uid('-u'), this.uid('-g'));
    writeFileSync(join(etc, 'key.pem'), this.cert.key);
    writeFileSync(join(etc, 'cert.pem'), this.cert.cert);
    writeFileSync(
      join(etc, 'main.cf'),
      [
        'compatibility_level = 3.6',
        `queue_directory = ${join(this.dir, 'spool')}`,
        `data_directory = ${join(this.dir, 'data')}`,
        'mail_owner = postfix',
        'setgid_group = postdrop',
        'inet_interfaces = 127.0.0.1',
        'inet_protocols = ipv4',
        'myhostname = mx.pf.test',
        'mydestination =',
        `virtual_mailbox_domains = ${this.domain}`,
        `virtual_mailbox_base = ${join(this.dir, 'mail')}`,
        'virtual_mailbox_maps = static:inbox/',
        `virtual_uid_maps = static:${this.uid('-u')}`,
        `virtual_gid_maps = static:${this.uid('-g')}`,
        `smtpd_tls_cert_file = ${join(etc, 'cert.pem')}`,
        `smtpd_tls_key_file = ${join(etc, 'key.pem')}`,
        'smtpd_tls_security_level = may',
        'smtpd_tls_received_header = yes',
        'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
        'mynetworks = 127.0.0.0/8',
        'message_size_limit = 52428800',
        'virtual_mailbox_limit = 0',
        '',
      ].join('\n'),
    );
    // Debian's master.cf, with smtpd on our port and nothing chrooted (the temp tree has no chroot).
    copyFileSync('/etc/postfix/master.cf', join(etc, 'master.cf'));
    const master = readFileSync(join(etc, 'master.cf'), 'utf8')
      .replace(/^smtp\s+inet\s+.*$/m, `127.0.0.1:${this.port} inet n - n - - smtpd`)
      .replace(/^([a-z]+\s+(?:unix|unix-dgram|fifo)\s+[-ny]\s+[-ny]\s+)y\s/gm, '$1n ');
    writeFileSync(join(etc, 'master.cf'), master);
    execFileSync('postfix', ['-c', etc, 'start'], { stdio: 'ignore' });
    const deadline = Date.now() + 15000;
    for (;;) {
      const up = await new Promise<boolean>((resolve) => {
        const s = connect(this.port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (up) return;
      if (Date.now() > deadline) throw new Error('postfix did not start listening');
      await new Promise((r) => setTimeout(r, 200));
    }
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
