import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import * as packet from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';

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
  readonly queries: { name: string; type: string; transport: 'udp' | 'tcp' }[] = [];
  private udp?: Socket;
  private tcp?: Server;
  port = 0;

  constructor(readonly host = '127.0.0.1') {}

  add(name: string, ...records: ZoneRecord[]): this {
    const key = name.toLowerCase();
    this.zone.set(key, [...(this.zone.get(key) ?? []), ...records]);
    return this;
  }

  async start(): Promise<void> {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, this.host, resolve));
    this.port = udp.address().port;
    udp.on('message', (msg, rinfo) => {
      const reply = this.answer(msg, 'udp');
      if (reply) udp.send(reply, rinfo.port, rinfo.address);
    });
    this.udp = udp;
    const tcp = createServer((socket) => {
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
    await new Promise<void>((resolve) => tcp.listen(this.port, this.host, resolve));
    this.tcp = tcp;
  }

  async stop(): Promise<void> {
    this.udp?.close();
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
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
    this.queries.push({ name, type: q.type, transport });
    if (this.silent.has(name)) return undefined;
    const base = { type: 'response' as const, id: query.id, questions: query.questions, flags: packet.AUTHORITATIVE_ANSWER | packet.RECURSION_DESIRED };
    if (this.servfail.has(name)) return packet.encode({ ...base, flags: base.flags | 2 });
    const records = this.zone.get(name);
    if (!records) return packet.encode({ ...base, flags: base.flags | 3 }); // NXDOMAIN
    if (transport === 'udp' && this.truncate.has(name)) return packet.encode({ ...base, flags: base.flags | packet.TRUNCATED_RESPONSE });
    const answers: Answer[] = records
      .filter((r) => r.type === q.type)
      .map((r) =>
        r.type === 'MX'
          ? { type: 'MX', name: q.name, ttl: r.ttl ?? 300, data: { preference: r.preference, exchange: r.exchange } }
          : ({ type: r.type, name: q.name, ttl: r.ttl ?? 300, data: r.data } as Answer),
      );
    return packet.encode({ ...base, answers });
  }
}
