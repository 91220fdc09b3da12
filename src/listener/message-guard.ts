import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import type { SmtpReply } from '../core/index.js';

const LF = 0x0a;
const CR = 0x0d;
const HEADER_SCAN_LIMIT = 256 * 1024;

/**
 * Watches a message body on its way to the spool. smtp-server ends DATA only on
 * <CRLF>.<CRLF> but passes bare LF, bare CR and NUL through; a downstream server that
 * treats `<LF>.<LF>` as the end would split such a message in two (SMTP smuggling).
 * Like Postfix's smtpd_forbid_bare_newline, the message is refused instead. The guard
 * also counts Received: headers to stop mail that loops, and stops writing once the
 * size limit is passed so that an oversized message never fills the disk.
 * It keeps consuming after a violation: smtp-server can only reply once DATA has ended.
 */
export class MessageGuard extends Transform {
  violation?: SmtpReply;
  /** The header section, once seen (for queue_outbound hooks). */
  headers = '';
  private prev = -1;
  private bytes = 0;
  private headerBuf: Buffer[] | null = [];
  private headerLen = 0;

  constructor(
    private readonly maxReceived: number,
    private readonly maxBytes: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.violation) return done();
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      this.violation = { code: 552, enhanced: '5.3.4', text: `Message exceeds the maximum size of ${this.maxBytes} bytes` };
      return done();
    }
    const bad = this.scanLineEnds(chunk) ?? (chunk.includes(0) ? 'NUL byte' : undefined);
    if (bad) {
      this.violation = { code: 554, enhanced: '5.6.0', text: `Message refused: ${bad} in message data; lines must end with CRLF (RFC 5321 section 2.3.8)` };
      return done();
    }
    if (this.headerBuf) this.scanHeaders(chunk);
    if (this.violation) return done();
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    // A CR as the very last byte would be followed by the terminating CRLF in the wire form: bare.
    if (!this.violation && this.prev === CR) {
      this.violation = { code: 554, enhanced: '5.6.0', text: 'Message refused: bare CR in message data; lines must end with CRLF (RFC 5321 section 2.3.8)' };
    }
    if (this.headerBuf) this.countReceived(Buffer.concat(this.headerBuf));
    done();
  }

  private scanLineEnds(chunk: Buffer): string | undefined {
    // A CR must be followed by LF and an LF preceded by CR; `prev` carries the byte across chunks.
    if (this.prev === CR && chunk[0] !== LF) return 'bare CR';
    let i = chunk.indexOf(LF);
    while (i !== -1) {
      const before = i === 0 ? this.prev : chunk[i - 1];
      if (before !== CR) return 'bare LF';
      i = chunk.indexOf(LF, i + 1);
    }
    let j = chunk.indexOf(CR);
    while (j !== -1) {
      if (j + 1 < chunk.length && chunk[j + 1] !== LF) return 'bare CR';
      j = chunk.indexOf(CR, j + 1);
    }
    this.prev = chunk[chunk.length - 1];
    return undefined;
  }

  private scanHeaders(chunk: Buffer): void {
    this.headerBuf!.push(chunk);
    this.headerLen += chunk.length;
    const joined = Buffer.concat(this.headerBuf!);
    const end = joined.indexOf('\r\n\r\n');
    if (end !== -1 || this.headerLen > HEADER_SCAN_LIMIT) {
      this.headerBuf = null;
      this.countReceived(end === -1 ? joined : joined.subarray(0, end + 2));
    } else {
      this.headerBuf = [joined];
    }
  }

  private countReceived(headers: Buffer): void {
    this.headers = headers.toString('utf8');
    const count = (headers.toString('latin1').match(/^Received:/gim) ?? []).length;
    if (count > this.maxReceived) {
      this.violation = { code: 554, enhanced: '5.4.6', text: `Too many hops (${count} Received: headers): mail loop suspected` };
    }
  }
}
