import { Readable } from 'node:stream';

/** A body held as bytes, as a stream of one chunk (a stream stays as it is). */
export function asStream(body: Buffer | Readable): Readable {
  return Buffer.isBuffer(body) ? Readable.from([body], { objectMode: false }) : body;
}

/** A body that cannot be read: the reader meets `err` on its first read, as from a failed file. */
export function failedStream(err: Error): Readable {
  return new Readable({
    read() {
      this.destroy(err);
    },
  });
}
