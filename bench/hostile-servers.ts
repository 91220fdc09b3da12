import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

/**
 * Mail exchangers that attack the client delivering to them (issue 12's hostile MX):
 *
 * - `lines`: answers EHLO with 100,000 lines (`250-E0000001` …, 14 bytes each, 1.4 MB),
 *   then behaves (accepts the mail);
 * - `flood`: answers EHLO with `250-` lines that never end, as fast as the client reads
 *   them (written on `drain` only: the flood is paced by the client's reading, never
 *   buffered here);
 * - `drip`: sends the greeting and every reply one byte a second.
 *
 * Each is bounded on its own side: what it reads is capped (a command line of 4 KiB, DATA
 * read and dropped), the flood stops at `floodMaxBytes` per connection or when the client
 * closes, and every connection is cut after `maxLifetimeMs`.
 */
export type HostileKind = 'lines' | 'flood' | 'drip';

export interface HostileServerSpec {
  readonly kind: HostileKind;
  readonly host: string;
  readonly port: number;
}

export interface HostileLimits {
  readonly floodMaxBytes: number;
  readonly maxLifetimeMs: number;
}

export interface HostileStats {
  readonly kind: HostileKind;
  connections: number;
  /** EHLO (or HELO) commands answered, or begun to be answered. */
  ehlos: number;
  /** Messages whose DATA ended with the final dot (only `lines` gets that far, if its client copes). */
  messages: number;
  bytesSent: number;
  open: number;
}

const EHLO_LINES = 100_000;
const MAX_COMMAND_LINE = 4096;

function linesReply(): Buffer {
  const parts: string[] = [];
  for (let i = 1; i < EHLO_LINES; i++) parts.push(`250-E${String(i).padStart(7, '0')}\r\n`);
  parts.push('250 OK\r\n');
  return Buffer.from(parts.join(''), 'latin1');
}

/** 64 KiB of flood lines, written again and again. */
function floodChunk(): Buffer {
  const line = '250-FLOOD-FLOOD-FLOOD-FLOOD-FLOOD-FLOOD-FLOOD-FLOOD-FLOOD-FLOOD\r\n';
  return Buffer.from(line.repeat(Math.floor(65536 / line.length)), 'latin1');
}

export class HostileServers {
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();
  readonly stats: HostileStats[];
  private readonly lines = linesReply();
  private readonly flood = floodChunk();

  constructor(
    private readonly specs: readonly HostileServerSpec[],
    private readonly limits: HostileLimits,
  ) {
    this.stats = specs.map((s) => ({ kind: s.kind, connections: 0, ehlos: 0, messages: 0, bytesSent: 0, open: 0 }));
  }

  async start(): Promise<void> {
    for (const [i, spec] of this.specs.entries()) {
      const server = createServer((socket) => this.accept(socket, this.stats[i]));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(spec.port, spec.host, () => resolve());
      });
      this.servers.push(server);
    }
  }

  /**
   * Cuts every connection open now with a reset, so that what the kernel still holds for
   * the client (megabytes of flood) is dropped rather than delivered before the FIN; the
   * servers keep listening.
   */
  cut(): void {
    for (const s of this.sockets) s.resetAndDestroy();
  }

  /** Stops listening and cuts every connection still open (a flood ends here at the latest). */
  async stop(): Promise<void> {
    this.cut();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }

  private accept(socket: Socket, stats: HostileStats): void {
    stats.connections++;
    stats.open++;
    this.sockets.add(socket);
    const lifetime = setTimeout(() => socket.resetAndDestroy(), this.limits.maxLifetimeMs);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(lifetime);
      this.sockets.delete(socket);
      stats.open--;
    });
    const send = stats.kind === 'drip' ? this.dripper(socket, stats) : (text: string | Buffer) => {
      stats.bytesSent += text.length;
      return socket.write(text);
    };
    send('220 hostile.bench.test ESMTP\r\n');
    let inData = false;
    let buf = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (inData) {
          if (line === '.') {
            inData = false;
            stats.messages++;
            send('250 2.0.0 accepted\r\n');
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') {
          stats.ehlos++;
          if (stats.kind === 'lines') send(this.lines);
          else if (stats.kind === 'flood') this.startFlood(socket, stats);
          else send('250 hostile.bench.test\r\n');
        } else if (verb === 'DATA') {
          inData = true;
          send('354 go ahead\r\n');
        } else if (verb === 'QUIT') {
          send('221 bye\r\n');
          socket.end();
        } else send('250 OK\r\n');
      }
      if (buf.length > MAX_COMMAND_LINE) socket.destroy();
    });
  }

  /** Writes flood chunks while the client reads them; stops at the cap or when the socket goes. */
  private startFlood(socket: Socket, stats: HostileStats): void {
    let sent = 0;
    const pump = () => {
      while (!socket.destroyed && socket.writable) {
        if (sent >= this.limits.floodMaxBytes) return socket.resetAndDestroy();
        sent += this.flood.length;
        stats.bytesSent += this.flood.length;
        if (!socket.write(this.flood)) return socket.once('drain', pump);
      }
    };
    pump();
  }

  /** Replies sent one byte a second, whatever the client does meanwhile. */
  private dripper(socket: Socket, stats: HostileStats): (text: string | Buffer) => boolean {
    let pending = Buffer.alloc(0);
    const timer = setInterval(() => {
      if (pending.length === 0 || socket.destroyed) return;
      socket.write(pending.subarray(0, 1));
      stats.bytesSent++;
      pending = pending.subarray(1);
    }, 1000);
    socket.on('close', () => clearInterval(timer));
    return (text) => {
      // A client that keeps talking to a dripping server would otherwise grow this without end.
      if (pending.length > MAX_COMMAND_LINE) return socket.destroy(), false;
      pending = Buffer.concat([pending, Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1')]);
      return true;
    };
  }
}
