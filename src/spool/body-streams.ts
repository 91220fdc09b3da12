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

/** The stored body with the entry's header prefix in front (see QueueEntry.headerPrefix). */
export function withPrefix(prefix: string | undefined, body: Buffer | Readable): Buffer | Readable {
  if (!prefix) return body;
  const head = Buffer.from(prefix, 'latin1');
  if (Buffer.isBuffer(body)) return Buffer.concat([head, body]);
  return Readable.from(
    (async function* () {
      yield head;
      // An error of the stored body's stream reaches the reader; a reader that stops early
      // ends this loop, which destroys the file stream.
      for await (const chunk of body) yield chunk as Buffer;
    })(),
    { objectMode: false },
  );
}
