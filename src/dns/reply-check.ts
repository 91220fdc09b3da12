import { randomBytes, randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import type { Packet } from 'dns-packet';

/**
 * What makes a reply hard to forge for an attacker who cannot see the query (RFC 5452
 * §9): an unpredictable 16-bit id, the source port the kernel picked at random, the
 * server's own address and port as the reply's source, the question echoed back, and
 * optionally the case of each letter of the name (draft-vixie-dnsext-dns0x20).
 */
export interface SentQuestion {
  readonly id: number;
  /** The name as sent: with 0x20, in the random case the reply must echo. */
  readonly name: string;
  readonly type: string;
  /** Whether the reply must echo the name's case exactly (0x20 on). */
  readonly exactCase: boolean;
}

/** A query id from the system's CSPRNG: ids in sequence would let anyone guess the next. */
export function randomQueryId(): number {
  return randomInt(0, 0x10000);
}

/**
 * The name with the case of each ASCII letter chosen at random. DNS matches names without
 * regard to case (RFC 4343) and a server copies the question into its reply (RFC 1035
 * §4.1.1), so the case pattern is a secret the real answer carries and a blind forger must guess.
 */
export function randomCase(name: string): string {
  const bits = randomBytes(Math.ceil(name.length / 8) + 1);
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    const flip = (bits[i >> 3] >> (i & 7)) & 1;
    out += /[a-z]/i.test(c) ? (flip ? c.toUpperCase() : c.toLowerCase()) : c;
  }
  return out;
}

/** An IP address in one spelling, so that `::1` and `0:0:0:0:0:0:0:1` compare equal. */
function canonicalIp(host: string): string {
  if (isIP(host) !== 6) return host;
  const h = host.replace(/%.*$/, '');
  try {
    return new URL(`http://[${h}]/`).hostname;
  } catch {
    return h.toLowerCase();
  }
}

/** Whether a datagram came from the address and port the query went to. */
export function fromServer(source: { address: string; port: number }, server: { host: string; port: number }): boolean {
  return source.port === server.port && canonicalIp(source.address) === canonicalIp(server.host);
}

/**
 * Whether a decoded message is the reply to the question sent: a response, with its id,
 * and exactly that one question (name, type and class IN). Anything else is ignored by
 * the caller, which keeps waiting for the real reply until its timeout.
 */
export function answersQuestion(reply: Packet, sent: SentQuestion): boolean {
  if (reply.type !== 'response' || reply.id !== sent.id) return false;
  const questions = reply.questions ?? [];
  if (questions.length !== 1) return false;
  const [q] = questions;
  if (q.type !== sent.type || (q.class ?? 'IN') !== 'IN') return false;
  // dns-packet decodes the root's trailing dot away; compare the labels as sent.
  const want = sent.name.replace(/\.$/, '');
  return sent.exactCase ? q.name === want : q.name.toLowerCase() === want.toLowerCase();
}
