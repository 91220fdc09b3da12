import { randomBytes } from 'node:crypto';

/**
 * New message ids: time first, so that ids sort roughly by arrival, then a sequence and
 * random bits, so that two nodes never collide; under `nodes=N` the worker's shard ends
 * the id (`…SK`, after the hex random part, so an id of a single process never looks sharded). The random bits come from a pool: a call
 * into the CSPRNG per message costs more.
 */
export class MessageIds {
  private sequence = 0;

  /** `suffix` is a worker's shard (`SK`, issue #16): the id says which shard holds it. */
  constructor(private readonly suffix = '') {}

  private randomPool = Buffer.alloc(0);
  private randomAt = 0;

  next(): string {
    this.sequence = (this.sequence + 1) % 1296;
    if (this.randomAt + 5 > this.randomPool.length) {
      this.randomPool = randomBytes(5 * 256);
      this.randomAt = 0;
    }
    const random = this.randomPool.toString('hex', this.randomAt, (this.randomAt += 5));
    return (Date.now().toString(36) + this.sequence.toString(36).padStart(2, '0') + random).toUpperCase() + this.suffix;
  }
}
