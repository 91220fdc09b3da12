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
 * one pino line whose `msg` is the record type (so that `grep` finds it), then handed to
 * each listener. A listener that throws costs its own view, never the log line or the
 * other listeners.
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
    this.logger.info(record, record.type);
    for (const listener of this.listeners) {
      try {
        listener.event?.(event);
        listener.record?.(record);
      } catch (err) {
        this.logger.error({ err: { message: (err as Error).message }, type: record.type, id: record.id }, 'disposition listener failed');
      }
    }
  }
}
