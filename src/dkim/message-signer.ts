import { createHash, sign } from 'node:crypto';
import { domainToASCII } from 'node:url';
import type { BodyCanonicalization, BodyHasher, HeaderField } from './mailauth-adapter.js';
import { bodyHasher, fromAddress, parseHeaderFields, prepareSignature, signatureIdentity } from './mailauth-adapter.js';
import { bodyCanonOf } from './key-ring.js';
import type { KeyRing, SigningKey } from './key-ring.js';

/**
 * A header section larger than this is not signed (the message goes out unsigned, and a
 * log line says why): the section is held in memory until it ends, and no real one comes
 * near it (smtp.ini max_received_headers bounds the trace fields to 50).
 */
export const MAX_HEADER_SECTION = 512 * 1024;

/** One signature made, as the Reception record tells it. */
export interface MadeSignature {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: string;
}

export interface SignOutcome {
  /** DKIM-Signature fields, CRLF-terminated, to put in front of the message (RFC 6376 §5.6); '' when none. */
  readonly prefix: string;
  readonly signatures: readonly MadeSignature[];
  /** Why the message goes out unsigned, or with fewer signatures than its sections name. */
  readonly problems: readonly string[];
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * The private-key operation, synchronous: MessageSigner runs in a signing worker
 * (signing-pool.ts), off the event loop already, where a hop to libuv's thread pool would
 * only add a thread wake-up (and wait behind the spool's fsyncs, which share that pool).
 */
function signWith(data: Buffer, digestFirst: boolean, key: SigningKey): string {
  const input = digestFirst ? createHash('sha256').update(data).digest() : data;
  return sign(digestFirst ? null : 'sha256', input, key.key).toString('base64');
}

/**
 * Signs one message as its bytes go by (the bytes as stored: un-dot-stuffed, CRLF line
 * ends, Tern's Received: first): the header section is held until its empty line (up to
 * MAX_HEADER_SECTION), then the body only runs through the body hashes its keys need.
 * finish() makes the signatures once the message is complete. The whole body is never
 * held: a 10 MB message costs its header section and a hash state.
 */
export class MessageSigner {
  private head: Buffer[] = [];
  private headBytes = 0;
  /** The last (up to) three bytes of the held header section. */
  private tail: Buffer = Buffer.alloc(0);
  private state: 'header' | 'body' | 'skip' = 'header';
  private fields: HeaderField[] = [];
  private readonly hashers = new Map<BodyCanonicalization, BodyHasher>();
  private keys?: SigningKey[];
  private readonly problems: string[] = [];

  constructor(private readonly ring: KeyRing) {}

  /** Takes the next bytes of the message; synchronous, bounded by the chunk's size. */
  write(chunk: Buffer): void {
    if (this.state === 'body') {
      for (const h of this.hashers.values()) h.update(chunk);
      return;
    }
    if (this.state === 'skip') return;
    // The empty line may straddle chunks: look from three bytes before this chunk. `end`
    // counts from the start of those bytes. Only the seam (the held tail and this chunk's
    // first three bytes) is copied: the header section often comes in a chunk per line.
    const prevTail = this.tail.length;
    let end = prevTail ? Buffer.concat([this.tail, chunk.subarray(0, 3)]).indexOf(CRLFCRLF) : -1;
    if (end === -1) {
      end = chunk.indexOf(CRLFCRLF);
      if (end !== -1) end += prevTail;
    }
    // A message whose first line is empty has an empty header section (RFC 5322 §2.1).
    if (this.headBytes === 0 && chunk[0] === 0x0d && chunk[1] === 0x0a) end = -2;
    if (end === -1) {
      this.headBytes += chunk.length;
      if (this.headBytes > MAX_HEADER_SECTION) return this.giveUp(`header section longer than ${MAX_HEADER_SECTION} bytes`);
      this.head.push(chunk);
      this.tail = chunk.length >= 3 ? chunk.subarray(chunk.length - 3) : Buffer.concat([this.tail, chunk]).subarray(-3);
      return;
    }
    // The section ends with the CRLF of its last field; the body starts after the empty
    // line. In this chunk's terms either may fall before it (the CRLFs straddle chunks).
    const headEnd = end + 2 - prevTail;
    const bodyStart = end + 4 - prevTail;
    let section = Buffer.concat(headEnd >= 0 ? [...this.head, chunk.subarray(0, headEnd)] : this.head);
    if (headEnd < 0) section = section.subarray(0, section.length + headEnd);
    this.head = [];
    if (section.length > MAX_HEADER_SECTION) return this.giveUp(`header section longer than ${MAX_HEADER_SECTION} bytes`);
    this.startBody(section);
    const rest = chunk.subarray(bodyStart);
    if (rest.length) for (const h of this.hashers.values()) h.update(rest);
  }

  private giveUp(problem: string): void {
    this.problems.push(problem);
    this.state = 'skip';
    this.head = [];
    this.tail = Buffer.alloc(0);
  }

  /** The header section is complete: which keys apply, and so which body hashes to compute. */
  private startBody(section: Buffer): void {
    this.fields = section.length ? parseHeaderFields(section) : [];
    let canons: BodyCanonicalization[];
    if (this.ring.signBy === 'from') {
      const domain = this.fromDomain();
      this.keys = domain ? this.ring.keysFor(domain) : [];
      canons = [...new Set(this.keys.map((k) => bodyCanonOf(k.canonicalization)))];
    } else {
      canons = this.ring.bodyCanonicalizations;
    }
    for (const c of canons) this.hashers.set(c, bodyHasher(c));
    this.state = canons.length ? 'body' : 'skip';
  }

  /** The From: domain as an A-label; '' (with a problem told) when there is none. */
  private fromDomain(): string {
    const address = fromAddress(this.fields);
    const at = address?.lastIndexOf('@') ?? -1;
    const domain = address && at > 0 ? domainToASCII(address.slice(at + 1)) : '';
    // Without a From: domain no section can be chosen (RFC 6376 §5.4 requires From: anyway).
    if (!domain) this.problems.push(address === undefined ? 'no From: address' : `From: address without a usable domain: ${address}`);
    return domain;
  }

  /**
   * Makes the signatures: `sender` is the envelope sender (sign_by=envelope), `now` the
   * t= time. Never rejects: what goes wrong is in `problems`, and the message goes out
   * with the signatures that could be made.
   */
  async finish(sender: string, now: number): Promise<SignOutcome> {
    // No empty line at all: the whole message is its header section, the body is empty.
    if (this.state === 'header') {
      const section = Buffer.concat(this.head);
      this.head = [];
      this.startBody(section);
    }
    if (this.state === 'skip' && this.hashers.size === 0) return { prefix: '', signatures: [], problems: this.problems };
    let keys = this.keys;
    if (keys === undefined) {
      // sign_by=envelope; a null sender (a report) signs by its From: domain (Tern's own).
      const domain = sender.includes('@') ? domainToASCII(sender.slice(sender.lastIndexOf('@') + 1)) : this.fromDomain();
      keys = domain ? this.ring.keysFor(domain) : [];
    }
    // Already signed by this d= and s= (a client that signs for itself): not signed twice.
    const present = new Set(
      this.fields
        .filter((f) => f.key === 'dkim-signature')
        .map(signatureIdentity)
        .filter((id) => id !== undefined)
        .map((id) => `${id.domain} ${id.selector}`),
    );
    keys = keys.filter((k) => !present.has(`${k.domain.toLowerCase()} ${k.selector.toLowerCase()}`));
    const digests = new Map<BodyCanonicalization, string>();
    for (const [c, h] of this.hashers) digests.set(c, h.digest());
    const signTime = new Date(Math.floor(now / 1000) * 1000);
    const made = keys.map((k) => {
      try {
        const prepared = prepareSignature({
          fields: this.fields,
          headers: k.headers,
          oversign: k.oversign,
          domain: k.domain,
          selector: k.selector,
          algorithm: k.algorithm,
          canonicalization: k.canonicalization,
          bodyHash: digests.get(bodyCanonOf(k.canonicalization))!,
          signTime,
        });
        const b = signWith(prepared.data, prepared.digestFirst, k);
        return { field: prepared.field(b), signature: { domain: k.domain, selector: k.selector, algorithm: k.algorithm } };
      } catch (err) {
        this.problems.push(`[${k.section}] d=${k.domain} s=${k.selector}: ${(err as Error).message}`);
        return undefined;
      }
    });
    const done = made.filter((m) => m !== undefined);
    return {
      prefix: done.map((m) => `${m.field}\r\n`).join(''),
      signatures: done.map((m) => m.signature),
      problems: this.problems,
    };
  }
}
