import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import * as packet from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';

/**
 * Hostile behaviour for one name: before (or instead of) the real reply, a forged one
 * that claims FORGED_ADDRESS, sent from another port, from another address, with
 * another id, or for another question; or the real reply with the question's name in
 * lower case (what a server that ignores 0x20 sends).
 */
export interface Tamper {
  readonly forge?: 'other-port' | 'other-address' | 'wrong-id' | 'other-question';
  /** Send only the forged reply, never the real one. */
  readonly withhold?: boolean;
  readonly lowercaseQuestion?: boolean;
}

/**
 * A TXT record's text as character-strings of at most 255 bytes each (RFC 1035 §3.3.14),
 * as published DKIM keys longer than that are (RFC 6376 §3.6.2.2); a reader joins them.
 */
function txtStrings(text: string): Buffer[] {
  const bytes = Buffer.from(text, 'utf8');
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 255) out.push(bytes.subarray(at, at + 255));
  return out.length ? out : [Buffer.alloc(0)];
}

/** What every forged reply claims: a test asserts it never comes back from a lookup. */
export const FORGED_ADDRESS = '203.0.113.66';
/** Another loopback address, where forged replies from "another address" come from. */
const FORGER_HOST = '127.0.0.250';

export type ZoneRecord =
  | { type: 'MX'; preference: number; exchange: string; ttl?: number }
  | { type: 'A' | 'AAAA' | 'CNAME' | 'TXT' | 'PTR'; data: string; ttl?: number };

/**
 * A real authoritative-style DNS server on loopback (UDP and TCP on one port), built
 * with dns-packet, serving a test zone. Names not in the zone are NXDOMAIN; names in
 * `servfail` answer SERVFAIL; names in `truncate` answer with TC over UDP so that the
 * client must retry over TCP; names in `silent` are never answered (a resolver that is
 * down, as far as that name is concerned).
 */
export class TestDnsServer {
  readonly zone = new Map<string, ZoneRecord[]>();
  readonly servfail = new Set<string>();
  readonly truncate = new Set<string>();
  readonly silent = new Set<string>();
  readonly tamper = new Map<string, Tamper>();
  /** Every query as received: the name in the case it was sent, its id. */
  readonly queries: { name: string; sentName: string; id: number; type: string; transport: 'udp' | 'tcp' }[] = [];
  private udp?: Socket;
  private tcp?: Server;
  port = 0;

  constructor(readonly host = '127.0.0.1') {}

  add(name: string, ...records: ZoneRecord[]): this {
    const key = name.toLowerCase();
    this.zone.set(key, [...(this.zone.get(key) ?? []), ...records]);
    return this;
  }

  /**
   * UDP and TCP on one port number. The UDP port is the kernel's pick; when its TCP twin
   * is taken (a busy suite's outgoing connections use the same range), another is tried.
   */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const udp = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(0, this.host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      const port = udp.address().port;
      const tcp = this.tcpServer();
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, this.host, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 20) continue;
        throw err;
      }
      this.serveUdp(udp);
      this.port = port;
      this.udp = udp;
      this.tcp = tcp;
      return;
    }
  }

  private serveUdp(udp: Socket): void {
    udp.on('message', (msg, rinfo) => {
      const reply = this.answer(msg, 'udp');
      if (!reply) return;
      const tamper = this.tamperFor(msg);
      if (!tamper?.forge) return udp.send(reply, rinfo.port, rinfo.address);
      void this.sendForged(msg, tamper.forge, rinfo).then(() => {
        if (!tamper.withhold) udp.send(reply, rinfo.port, rinfo.address);
      });
    });
  }

  private tcpServer(): Server {
    return createServer((socket) => {
      let buf = Buffer.alloc(0);
      socket.on('error', () => undefined);
      socket.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= buf.readUInt16BE(0) + 2) {
          const len = buf.readUInt16BE(0);
          const reply = this.answer(buf.subarray(2, len + 2), 'tcp');
          buf = buf.subarray(len + 2);
          if (reply) {
            const prefix = Buffer.alloc(2);
            prefix.writeUInt16BE(reply.length);
            socket.write(Buffer.concat([prefix, reply]));
          }
        }
      });
    });
  }

  async stop(): Promise<void> {
    this.udp?.close();
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
  }

  private tamperFor(msg: Buffer): Tamper | undefined {
    try {
      return this.tamper.get(packet.decode(msg).questions?.[0]?.name.toLowerCase() ?? '');
    } catch {
      return undefined;
    }
  }

  /** A reply to `msg` claiming FORGED_ADDRESS, sent the way `how` says; resolves once it is out. */
  private async sendForged(msg: Buffer, how: NonNullable<Tamper['forge']>, to: { address: string; port: number }): Promise<void> {
    const query = packet.decode(msg);
    const q = query.questions![0];
    const forged = packet.encode({
      type: 'response',
      id: how === 'wrong-id' ? (query.id! + 1) % 0x10000 : query.id,
      flags: packet.RECURSION_DESIRED,
      questions: [how === 'other-question' ? { ...q, name: `other.${q.name}` } : q],
      answers: [{ type: 'A', name: q.name, ttl: 300, data: FORGED_ADDRESS }],
    });
    const needsOwnSocket = how === 'other-port' || how === 'other-address';
    const socket = needsOwnSocket ? createSocket({ type: 'udp4', reuseAddr: true }) : this.udp!;
    // other-port: the server's address, another port; other-address: the server's port, another address.
    if (needsOwnSocket) await new Promise<void>((resolve) => socket.bind(how === 'other-address' ? this.port : 0, how === 'other-address' ? FORGER_HOST : this.host, resolve));
    await new Promise<void>((resolve) => socket.send(forged, to.port, to.address, () => resolve()));
    if (needsOwnSocket) socket.close();
    // Give the forged datagram a head start, so that it is read before the real reply.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  private answer(msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    let query: Packet;
    try {
      query = packet.decode(msg);
    } catch {
      return undefined;
    }
    const q = query.questions?.[0];
    if (!q) return undefined;
    const name = q.name.toLowerCase();
    this.queries.push({ name, sentName: q.name, id: query.id ?? 0, type: q.type, transport });
    if (this.silent.has(name)) return undefined;
    const questions = this.tamper.get(name)?.lowercaseQuestion ? [{ ...q, name }] : query.questions;
    const base = { type: 'response' as const, id: query.id, questions, flags: packet.AUTHORITATIVE_ANSWER | packet.RECURSION_DESIRED };
    if (this.servfail.has(name)) return packet.encode({ ...base, flags: base.flags | 2 });
    const records = this.zone.get(name);
    if (!records) return packet.encode({ ...base, flags: base.flags | 3 }); // NXDOMAIN
    if (transport === 'udp' && this.truncate.has(name)) return packet.encode({ ...base, flags: base.flags | packet.TRUNCATED_RESPONSE });
    const answers: Answer[] = records
      .filter((r) => r.type === q.type)
      .map((r) =>
        r.type === 'MX'
          ? { type: 'MX', name: q.name, ttl: r.ttl ?? 300, data: { preference: r.preference, exchange: r.exchange } }
          : r.type === 'TXT'
            ? ({ type: 'TXT', name: q.name, ttl: r.ttl ?? 300, data: txtStrings(r.data) } as Answer)
            : ({ type: r.type, name: q.name, ttl: r.ttl ?? 300, data: r.data } as Answer),
      );
    return packet.encode({ ...base, answers });
  }
}
