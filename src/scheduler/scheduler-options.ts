import type { ConnectionLease, DestinationHealth, LimitCoordinator, MessageRate, ShapedDestination } from '../cluster/index.js';
import type { AdminAction, Clock, DeliveryOutcome, RecipientDisposition } from '../core/index.js';
import type { HookRunner } from '../hooks/index.js';
import type { OutboundConfig, Route } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { QueueEntry, Spool } from '../spool/index.js';
import type { Reporter } from './settle.js';
import type { SuspensionStore } from './suspension-file.js';

/**
 * What an attempt to a destination under limits.ini carries: the connection slot its
 * session holds (the session lives no longer than the slot), and the limits.ini
 * max_deliveries_per_connection.
 */
export interface DeliveryTicket {
  readonly lease: ConnectionLease;
  readonly maxDeliveries?: number;
  /** The destination's message rate, which delivery also paces at the start of each transaction. */
  readonly rate?: MessageRate;
}

/** What the scheduler needs from delivery; daemon/compose.ts hands it the real agent. */
export interface Deliverer {
  /** One attempt for the entry's unfinished recipients; never throws for a remote failure. */
  deliver(entry: QueueEntry, ticket?: DeliveryTicket): Promise<DeliveryOutcome>;
  /** Ends the idle session a slot holds (QUIT) and resolves once it has closed; at once when there is none. */
  endLease?(lease: ConnectionLease): Promise<void>;
  /** Aborts attempts in progress (shutdown after the drain bound). */
  destroy(): void;
}

/** Which destination key and limits.ini limits a recipient domain has (cluster's DestinationKeys). */
export interface DestinationResolver {
  resolve(domain: string): ShapedDestination | undefined | Promise<ShapedDestination | undefined>;
}

export interface SchedulerEvents {
  /** Each recipient's disposition, and each operator's action on an entry; daemon/compose.ts hands them to the disposition sink (log, plugins, metrics). */
  disposition: [event: RecipientDisposition | AdminAction, entry: QueueEntry];
  /** One delivery attempt ended, with how long it took (metrics). */
  attempt: [entry: QueueEntry, events: readonly RecipientDisposition[], durationMs: number];
}

export interface SchedulerOptions {
  readonly config: OutboundConfig;
  /** routes.ini: per-domain max_connections. */
  readonly routes?: ReadonlyMap<string, Route>;
  readonly spool: Spool;
  readonly deliverer: Deliverer;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Called with each attempt's dispositions before a finished entry is removed (DSNs). */
  readonly reporter?: Reporter;
  readonly hooks?: HookRunner;
  /** Keeps suspensions across restarts; without one they last until resumed or the process ends. */
  readonly suspensions?: SuspensionStore;
  /** limits.ini: both, or neither (then only the per-domain cap of routes.ini and outbound.ini applies). */
  readonly destinations?: DestinationResolver;
  readonly coordinator?: LimitCoordinator;
  /** redis.ini: destination health shared with the other nodes (one probes a down destination for all). */
  readonly health?: DestinationHealth;
}

