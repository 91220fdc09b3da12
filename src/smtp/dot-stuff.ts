import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const ONE_DOT = Buffer.from('.');
const END = Buffer.from('.\r\n');
const CRLF_END = Buffer.from('\r\n.\r\n');

/**
 * Splits `chunk` where a line starts with a dot and doubles that dot (RFC 5321 §4.5.2).
 * `lineStart` says whether the chunk begins a line. Returns the chunk itself when
 * nothing needs doubling (the common case: no copy).
 */
function stuff(chunk: Buffer, lineStart: boolean): Buffer {
  let pieces: Buffer[] | undefined;
  let from = 0;
  if (lineStart && chunk.length > 0 && chunk[0] === DOT) {
    pieces = [ONE_DOT];
  }
  let lf = chunk.indexOf(LF);
  while (lf !== -1 && lf + 1 < chunk.length) {
    if (chunk[lf + 1] === DOT) {
      pieces ??= [];
      pieces.push(chunk.subarray(from, lf + 1), ONE_DOT);
      from = lf + 1;
    }
    lf = chunk.indexOf(LF, lf + 1);
  }
  if (!pieces) return chunk;
  pieces.push(chunk.subarray(from));
  return Buffer.concat(pieces);
}

/** A whole body dot-stuffed and terminated (`CRLF.CRLF`), as one buffer to write at once. */
export function dotStuffed(body: Buffer): Buffer {
  const stuffed = stuff(body, true);
  const endsWithCrlf = stuffed.length >= 2 && stuffed[stuffed.length - 2] === CR && stuffed[stuffed.length - 1] === LF;
  return Buffer.concat([stuffed, stuffed.length === 0 || endsWithCrlf ? END : CRLF_END]);
}

/**
 * The streaming form: dot-stuffs a body read from the spool and ends it with the final
 * `.`, chunk by chunk, holding nothing but the last two octets seen. As a Transform it
 * passes backpressure from the socket back to the file.
 */
export class DotStuffer extends Transform {
  private last = -1;
  private beforeLast = -1;
  private seen = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length === 0) return done();
    const out = stuff(chunk, !this.seen || this.last === LF);
    this.seen = true;
    this.beforeLast = chunk.length >= 2 ? chunk[chunk.length - 2] : this.last;
    this.last = chunk[chunk.length - 1];
    done(null, out);
  }

  override _flush(done: TransformCallback): void {
    done(null, !this.seen || (this.beforeLast === CR && this.last === LF) ? END : CRLF_END);
  }
}
