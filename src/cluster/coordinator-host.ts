import type { ConnectionLease, DestinationLimits, LimitCoordinator, MessageRate } from './coordinator.js';
import { isCoordCall } from './ipc-messages.js';
import type { CoordCall, IpcChannel } from './ipc-messages.js';

/** Bounds on what a worker may send: a key is a domain or a site name, a lease id short. */
const MAX_KEY = 255;
const MAX_LEASE_ID = 100;
const MAX_COUNT = 1_000_000;
/** Leases remembered per worker: far above any real number of sessions, and bounded. */
const MAX_LEASES_PER_WORKER = 100_000;

const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_COUNT;

function isRate(v: unknown): v is MessageRate {
  const r = v as MessageRate;
  return typeof r === 'object' && r !== null && isCount(r.count) && isCount(r.burst) && Number.isFinite(r.perMs) && r.perMs > 0;
}

function limitsOf(v: unknown): DestinationLimits | undefined {
  const l = v as DestinationLimits;
  if (typeof l !== 'object' || l === null || !isCount(l.maxConnections)) return undefined;
  if (l.rate !== undefined && !isRate(l.rate)) return undefined;
  return { maxConnections: l.maxConnections, ...(l.rate ? { rate: { count: l.rate.count, perMs: l.rate.perMs, burst: l.rate.burst } } : {}) };
}

/**
 * The primary's side of the IPC coordination (`nodes=N`): serves any LimitCoordinator (the
 * in-process one on a single machine, Redis's across machines) to the workers, checking
 * every argument a worker sends. It remembers which leases each worker holds, so that the
 * slots of a worker that dies are released at once rather than never.
 */
export class CoordinatorHost {
  private readonly held = new Map<IpcChannel, Map<string, ConnectionLease>>();
  private readonly detachers = new Map<IpcChannel, () => void>();
  private readonly unsubscribe: () => void;

  constructor(private readonly coordinator: LimitCoordinator) {
    // A slot freed anywhere may let any worker's parked entries go.
    this.unsubscribe = coordinator.onFreed((key) => {
      for (const channel of this.held.keys()) channel.send({ tern: 'coord-freed', key });
    });
  }

  /** Serves one worker; the returned function releases the leases it still held and stops serving it. */
  attach(channel: IpcChannel): () => void {
    const leases = new Map<string, ConnectionLease>();
    this.held.set(channel, leases);
    const off = channel.onMessage((m) => {
      if (isCoordCall(m)) void this.serve(channel, leases, m);
    });
    const detach = () => {
      off();
      this.held.delete(channel);
      this.detachers.delete(channel);
      for (const lease of leases.values()) this.coordinator.releaseSlot(lease);
      leases.clear();
    };
    this.detachers.set(channel, detach);
    return detach;
  }

  close(): void {
    for (const detach of [...this.detachers.values()]) detach();
    this.unsubscribe();
  }

  private async serve(channel: IpcChannel, leases: Map<string, ConnectionLease>, call: CoordCall): Promise<void> {
    const reply = (result: unknown) => channel.send({ tern: 'coord-reply', id: call.id, result });
    const refuse = (error: string) => channel.send({ tern: 'coord-reply', id: call.id, error });
    const [a, b, c] = call.args;
    try {
      switch (call.op) {
        case 'acquireSlot': {
          const limits = limitsOf(b);
          if (!isText(a, MAX_KEY) || !limits || !isText(c, MAX_LEASE_ID)) return refuse('bad arguments');
          if (leases.size >= MAX_LEASES_PER_WORKER && !leases.has(c)) return reply({ granted: false, reason: 'connection_limit' });
          const answer = await this.coordinator.acquireSlot(a, limits, c);
          if (answer.granted) leases.set(answer.lease.id, answer.lease);
          return reply(answer);
        }
        case 'releaseSlot': {
          const lease = a as ConnectionLease;
          if (typeof lease !== 'object' || lease === null || !isText(lease.key, MAX_KEY) || !isText(lease.id, MAX_LEASE_ID)) return;
          leases.delete(lease.id);
          return this.coordinator.releaseSlot({ key: lease.key, id: lease.id });
        }
        case 'takeTokens': {
          const limits = limitsOf(b);
          if (!isText(a, MAX_KEY) || !limits || !isCount(c)) return refuse('bad arguments');
          return reply(await this.coordinator.takeTokens(a, limits, c));
        }
        case 'returnTokens': {
          const limits = limitsOf(b);
          if (isText(a, MAX_KEY) && limits && isCount(c)) this.coordinator.returnTokens(a, limits, c);
          return;
        }
        default:
          return refuse(`unknown call ${String(call.op).slice(0, 40)}`);
      }
    } catch (err) {
      // The contract says a coordinator never rejects; one that does leaves the worker to its share.
      refuse((err as Error).message ?? String(err));
    }
  }
}
