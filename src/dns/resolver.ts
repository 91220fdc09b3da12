import { createSocket } from 'node:dgram';
import { connect as tcpConnect } from 'node:net';
import { isIP } from 'node:net';
import { answersQuestion, fromServer, randomCase, randomQueryId } from './reply-check.js';
import type { SentQuestion } from './reply-check.js';
import * as packet from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';
import { ErrorCode, TernError } from '../core/index.js';
import type { Clock } from '../core/index.js';
import type { DnsServer } from '../config/index.js';

export type RecordType = 'MX' | 'A' | 'AAAA' | 'TXT' | 'CNAME' | 'PTR';

export interface DnsAnswer {
  /** NOERROR with answers, NOERROR without (NODATA), or NXDOMAIN. Anything else throws. */
  readonly rcode: 'NOERROR' | 'NXDOMAIN';
  readonly answers: readonly Answer[];
}

export interface ResolverOptions {
  readonly servers: readonly DnsServer[];
  /** Per query and server, in milliseconds. */
  readonly timeoutMs: number;
  readonly cacheMaxEntries: number;
  readonly clock: Clock;
  /** dns.ini use_0x20: randomise the case of query names and insist that replies echo it. */
  readonly use0x20?: boolean;
  /** Told of each lookup that every server failed (metrics), with the last server's failure. */
  readonly onFailure?: (type: RecordType, reason: DnsFailureReason) => void;
}

/** Why a lookup failed at the last server asked: no answer in time, SERVFAIL, REFUSED, or anything else. */
export type DnsFailureReason = 'timeout' | 'servfail' | 'refused' | 'error';

const TIMED_OUT = 'ETIMEDOUT';
const timedOut = (message: string) => Object.assign(new Error(message), { code: TIMED_OUT });

interface CacheEntry {
  readonly expires: number;
  readonly value: DnsAnswer;
}

// Negative answers are cached briefly whatever the SOA says, so a fixed typo does not linger.
const NEGATIVE_TTL_CAP = 300;

/**
 * A stub resolver: asks the configured recursive servers over UDP, retries over TCP
 * when the answer is truncated (RFC 1035 §4.2.2, RFC 7766), and caches by TTL. A
 * SERVFAIL, REFUSED or timeout from every server is a temporary failure.
 */
export class DnsResolver {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<DnsAnswer>>();

  constructor(private readonly options: ResolverOptions) {}

  async query(name: string, type: RecordType): Promise<DnsAnswer> {
    const key = `${type} ${name.toLowerCase()}`;
    const now = this.options.clock.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) return hit.value;
    if (hit) this.cache.delete(key);
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.queryServers(name, type).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private async queryServers(name: string, type: RecordType): Promise<DnsAnswer> {
    let lastError: unknown;
    let reason: DnsFailureReason = 'error';
    for (const server of this.options.servers) {
      try {
        let response = await this.exchangeUdp(server, name, type);
        if ((response.flags ?? 0) & packet.TRUNCATED_RESPONSE) response = await this.exchangeTcp(server, name, type);
        const rcode = (response as Packet & { rcode?: string }).rcode ?? 'NOERROR';
        if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') {
          lastError = new Error(`${rcode} from ${server.host}`);
          reason = rcode === 'SERVFAIL' ? 'servfail' : rcode === 'REFUSED' ? 'refused' : 'error';
          continue;
        }
        const value: DnsAnswer = { rcode, answers: response.answers ?? [] };
        this.remember(`${type} ${name.toLowerCase()}`, value, response);
        return value;
      } catch (err) {
        lastError = err;
        reason = (err as NodeJS.ErrnoException).code === TIMED_OUT ? 'timeout' : 'error';
      }
    }
    this.options.onFailure?.(type, reason);
    throw new TernError(
      ErrorCode.DNS_TEMPORARY,
      { code: 451, enhanced: '4.4.3', text: `DNS lookup of ${type} ${name} failed: ${(lastError as Error)?.message ?? 'no server answered'}` },
      { cause: lastError },
    );
  }

  private remember(key: string, value: DnsAnswer, response: Packet): void {
    if (this.options.cacheMaxEntries === 0) return;
    let ttl: number;
    if (value.answers.length > 0) {
      ttl = Math.min(...value.answers.map((a) => ('ttl' in a && typeof a.ttl === 'number' ? a.ttl : 0)));
    } else {
      const soa = (response.authorities ?? []).find((a) => a.type === 'SOA') as { ttl?: number; data?: { minimum?: number } } | undefined;
      ttl = Math.min(soa?.ttl ?? 60, soa?.data?.minimum ?? 60, NEGATIVE_TTL_CAP);
    }
    if (ttl <= 0) return;
    if (this.cache.size >= this.options.cacheMaxEntries) {
      // Map keeps insertion order: dropping the oldest entry is a cheap approximation of LRU.
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, { expires: this.options.clock.now() + ttl * 1000, value });
  }

  /** A fresh id (and, with 0x20, a fresh case pattern) for every query, UDP or TCP. */
  private queryPacket(name: string, type: RecordType): { sent: SentQuestion; buf: Buffer } {
    const exactCase = this.options.use0x20 === true;
    const sent: SentQuestion = { id: randomQueryId(), name: exactCase ? randomCase(name) : name, type, exactCase };
    const buf = packet.encode({
      type: 'query',
      id: sent.id,
      flags: packet.RECURSION_DESIRED,
      questions: [{ type, name: sent.name, class: 'IN' }],
    });
    return { sent, buf };
  }

  /**
   * The socket is connected to the server, so the kernel drops datagrams from any other
   * address or port (and reports an unreachable port at once); the source is checked
   * again here all the same. A reply that is not the answer to this very query (wrong
   * source, id, question or case) is ignored and the real one awaited until the timeout:
   * treating it as an error would let a forger cut every lookup short.
   */
  private exchangeUdp(server: DnsServer, name: string, type: RecordType): Promise<Packet> {
    const { sent, buf } = this.queryPacket(name, type);
    return new Promise((resolve, reject) => {
      const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
      const timer = setTimeout(() => finish(timedOut(`timeout after ${this.options.timeoutMs} ms from ${server.host}`)), this.options.timeoutMs);
      let settled = false;
      const finish = (err: Error | null, response?: Packet) => {
        // An error after the reply (or a second one) must not close the socket twice.
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.close();
        if (err) reject(err);
        else resolve(response!);
      };
      socket.on('error', (err) => finish(err));
      socket.on('message', (msg, source) => {
        if (!fromServer(source, server)) return;
        let decoded: Packet;
        try {
          decoded = packet.decode(msg);
        } catch {
          return; // garbage is ignored; the timeout decides
        }
        if (!answersQuestion(decoded, sent)) return;
        finish(null, decoded);
      });
      socket.connect(server.port, server.host, () => socket.send(buf, (err) => err && finish(err)));
    });
  }

  private exchangeTcp(server: DnsServer, name: string, type: RecordType): Promise<Packet> {
    const { sent, buf } = this.queryPacket(name, type);
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ host: server.host, port: server.port });
      let received = Buffer.alloc(0);
      const timer = setTimeout(() => finish(timedOut(`TCP timeout from ${server.host}`)), this.options.timeoutMs);
      const finish = (err: Error | null, response?: Packet) => {
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(response!);
      };
      socket.on('error', (err) => finish(err));
      socket.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(buf.length);
        socket.write(Buffer.concat([len, buf]));
      });
      // Messages are length-prefixed (RFC 1035 §4.2.2), each at most 64 KiB; one that is
      // not the answer to this query is skipped like a stray datagram, until the timeout.
      socket.on('data', (chunk) => {
        received = Buffer.concat([received, chunk]);
        while (received.length >= 2 && received.length >= received.readUInt16BE(0) + 2) {
          const size = received.readUInt16BE(0);
          let decoded: Packet | undefined;
          try {
            decoded = packet.decode(received.subarray(2, size + 2));
          } catch {
            decoded = undefined;
          }
          received = received.subarray(size + 2);
          if (decoded && answersQuestion(decoded, sent)) return finish(null, decoded);
        }
      });
      socket.on('end', () => finish(new Error('DNS TCP connection closed early')));
    });
  }

  /**
   * The PTR names of an address (RFC 1035 §3.5 in-addr.arpa, RFC 3596 §2.5 ip6.arpa),
   * through the same cache, servers and timeout as every other query. NXDOMAIN and
   * NODATA are an empty list; a failure of every server throws like query().
   */
  async reverse(ip: string): Promise<string[]> {
    const answer = await this.query(reverseName(ip), 'PTR');
    return answer.answers.filter((a) => a.type === 'PTR').map((a) => String((a as { data: unknown }).data));
  }
}

/** The in-addr.arpa or ip6.arpa name of an address; IPv4-mapped IPv6 counts as IPv4. */
export function reverseName(ip: string): string {
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (v4 && isIP(v4[1]) === 4) return `${v4[1].split('.').reverse().join('.')}.in-addr.arpa`;
  if (isIP(ip) !== 6) throw new TernError(ErrorCode.DNS_TEMPORARY, { code: 451, enhanced: '4.4.3', text: `not an IP address: ${ip}` });
  let text = ip.toLowerCase();
  // A trailing dotted quad (RFC 4291 §2.2 form 3) is two 16-bit groups.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number);
    text = text.slice(0, quad.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16);
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const nibbles = groups.map((g) => g.padStart(4, '0')).join('');
  return `${[...nibbles].reverse().join('.')}.ip6.arpa`;
}
