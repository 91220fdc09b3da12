import { makeCert } from './certs.js';
import type { TestCert } from './certs.js';
import { TestDnsServer } from './dns-server.js';
import { TestMx } from './mx-server.js';
import { startOnOnePort } from './ports.js';
import { TernProcess, tempQueue, writeConfig } from './tern-process.js';

/**
 * The test Internet on loopback: a DNS server for the `.test` zone and mail exchangers
 * on 127.0.0.2 (STARTTLS) and 127.0.0.4 (plain). 127.0.0.3 has nothing listening,
 * so connections to it are refused. No port is privileged or fixed: the DNS server and
 * the mail exchangers listen on ports the kernel picks, the MX hosts all on one (`port`,
 * Tern's outbound.ini `remote_port` in `configFiles`), so that any user can run it and
 * two worlds on other addresses never collide. A further MX host of a test listens on
 * `world.port` too (`new TestMx(host, world.port)` after `start()`); a route's next hop
 * on any port of its own, named in routes.ini `port=`.
 *
 *   good.test      MX 10 mx.good.test → 127.0.0.2
 *   other.test     MX 10 mx.other.test → 127.0.0.4
 *   fallback.test  MX 10 dead.fallback.test → 127.0.0.3, MX 20 mx.good.test
 *   implicit.test  no MX, A 127.0.0.4
 *   nullmx.test    MX 0 . (RFC 7505)
 *   nowhere.test   NXDOMAIN
 */
export class World {
  readonly dns = new TestDnsServer();
  readonly cert: TestCert = makeCert('mx.good.test');
  readonly mx: TestMx;
  readonly mx2: TestMx;
  /** The port every MX host of this world listens on (the kernel's pick, known after `start()`). */
  port = 0;

  constructor(
    readonly hosts = { tls: '127.0.0.2', dead: '127.0.0.3', plain: '127.0.0.4' },
    /** 0: the kernel's pick. The benchmark says 25, where its Postfix sink and Haraka deliver. */
    private readonly mxPort = 0,
  ) {
    this.mx = new TestMx(hosts.tls, 0, { cert: this.cert });
    this.mx2 = new TestMx(hosts.plain, 0);
    this.dns
      .add('good.test', { type: 'MX', preference: 10, exchange: 'mx.good.test' })
      .add('mx.good.test', { type: 'A', data: hosts.tls })
      .add('other.test', { type: 'MX', preference: 10, exchange: 'mx.other.test' })
      .add('mx.other.test', { type: 'A', data: hosts.plain })
      .add('fallback.test', { type: 'MX', preference: 10, exchange: 'dead.fallback.test' }, { type: 'MX', preference: 20, exchange: 'mx.good.test' })
      .add('dead.fallback.test', { type: 'A', data: hosts.dead })
      .add('implicit.test', { type: 'A', data: hosts.plain })
      .add('nullmx.test', { type: 'MX', preference: 0, exchange: '.' });
  }

  async start(): Promise<this> {
    await this.dns.start();
    this.port = await startOnOnePort([this.mx, this.mx2], this.mxPort);
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all([this.dns.stop(), this.mx.stop(), this.mx2.stop()]);
  }

  /**
   * Config files for a daemon that lives in this world; `outbound` lines are appended (a
   * test's own `outbound.ini` in `files` must carry `remote_port=${world.port}` itself).
   */
  configFiles(extra: { outbound?: string; smtp?: string; files?: Record<string, string | Buffer> } = {}): Record<string, string | Buffer> {
    return {
      me: 'tern.test\n',
      'smtp.ini': `[main]\nlisten=127.0.0.1:0\n${extra.smtp ?? ''}\n`,
      'http.ini': 'listen=127.0.0.1:0\n',
      'dns.ini': `[main]\nservers=127.0.0.1:${this.dns.port}\ntimeout=2\n`,
      'outbound.ini': `local_mx_ok=true\nconnect_timeout=2\ntemp_fail_intervals=1s*3\nremote_port=${this.port}\n${extra.outbound ?? ''}\n`,
      ...(extra.files ?? {}),
    };
  }

  async tern(extra: Parameters<World['configFiles']>[0] = {}, queueDir = tempQueue()): Promise<TernProcess> {
    return new TernProcess(writeConfig(this.configFiles(extra)), queueDir).start();
  }
}
