import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { IncomingMessage } from '../spool/index.js';
import type { BodySigner } from '../dkim/index.js';

/**
 * The spool's body stream with a DKIM signer reading along: every chunk goes to the
 * signer (its header section, then its body hashes) and on to the spool, which keeps its
 * backpressure (a chunk is taken only once the spool has taken the one before). The
 * signer never holds the body: a large message streams to its file as before.
 */
class SigningBody extends Writable {
  constructor(
    private readonly inner: Writable,
    private readonly signer: BodySigner,
    private readonly onSignerFault: (err: Error) => void,
  ) {
    super({ highWaterMark: 64 * 1024 });
    // A disk fault in the spool's stream reaches whoever writes here (the listener drains the client then).
    inner.on('error', (err) => this.destroy(err));
  }

  private broken = false;

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (!this.broken) {
      try {
        this.signer.write(chunk);
      } catch (err) {
        // Signing never costs a message: a fault here leaves it unsigned, and it is told.
        this.broken = true;
        this.onSignerFault(err as Error);
      }
    }
    this.inner.write(chunk, (err) => done(err));
  }

  override _final(done: (err?: Error | null) => void): void {
    this.inner.end();
    finished(this.inner, { cleanup: true }).then(
      () => done(),
      (err: Error) => done(err),
    );
  }
}

/** A message being received and signed: the spool's, with its body read along the way. */
export interface SigningIncoming {
  readonly incoming: IncomingMessage;
  /** Resolves (never rejects) once every byte went by the signer: true when they all reached the spool too. */
  complete(): Promise<boolean>;
  /** Whether the signer failed while reading (the message is then not signed). */
  readonly faulted: () => Error | undefined;
  /** The signatures, once complete() resolved true (see MessageSigner.finish). */
  readonly finish: BodySigner['finish'];
  /** No signatures will be asked for: the signer lets go of the message. */
  readonly discard: () => void;
}

export function signingIncoming(spooled: IncomingMessage, signer: BodySigner): SigningIncoming {
  let fault: Error | undefined;
  const body = new SigningBody(spooled.body, signer, (err) => {
    fault ??= err;
  });
  body.on('error', () => undefined); // surfaced by commit(), as the spool's own stream is
  const incoming: IncomingMessage = {
    messageId: spooled.messageId,
    body,
    commit: async (drafts, now) => {
      // Ending the wrapper ends the spool's stream; a failure there is the spool's to report.
      if (!body.writableEnded) body.end();
      await finished(body, { cleanup: false }).catch(() => undefined);
      return spooled.commit(drafts, now);
    },
    abort: async () => {
      body.destroy();
      signer.abort();
      await spooled.abort();
    },
  };
  return {
    incoming,
    complete: async () => {
      if (!body.writableEnded) body.end();
      try {
        await finished(body, { cleanup: false });
        return true;
      } catch {
        return false;
      }
    },
    faulted: () => fault,
    finish: (sender, now) => signer.finish(sender, now),
    discard: () => signer.abort(),
  };
}
