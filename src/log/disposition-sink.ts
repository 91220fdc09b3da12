import type { Disposition } from '../core/index.js';
import { dispositionRecord } from './disposition-record.js';
import type { DispositionRecord } from './records.js';
import type { Logger } from './logger.js';

/** Who else hears of each disposition: metrics take the event, plugins' log_disposition the record. */
export interface DispositionListener {
  event?(event: Disposition): void;
  /** The record as logged: the plugin API's log_disposition argument. */
  record?(record: DispositionRecord): void;
}

/**
 * Where every disposition goes: it is rendered once into its log record and written as
 * one pino line whose `msg` is its kind (so that `grep` finds it), then handed to each
 * listener. Nothing here reads a field of the record, so the record's fields can change
 * without touching anything but the renderer. A listener that throws costs its own view,
 * never the log line or the other listeners.
 */
export class DispositionSink {
  private readonly listeners: DispositionListener[] = [];

  constructor(
    private readonly logger: Logger,
    private readonly render: (event: Disposition) => DispositionRecord = dispositionRecord,
  ) {}

  subscribe(listener: DispositionListener): void {
    this.listeners.push(listener);
  }

  emit(event: Disposition): void {
    const record = this.render(event);
    this.logger.info(record, event.kind);
    for (const listener of this.listeners) {
      try {
        listener.event?.(event);
        listener.record?.(record);
      } catch (err) {
        const id = event.kind === 'Reception' ? event.messageId : event.entry.id;
        this.logger.error({ err: { message: (err as Error).message }, kind: event.kind, id }, 'disposition listener failed');
      }
    }
  }
}
