import type { Logger } from '../log/index.js';
import type { DispositionRecord } from '../log/index.js';
import type { QueueEntry } from '../spool/index.js';
import type { BounceResult, DeferredResult, EntryView, LoadedPlugin, NextHop, QueueOutboundResult, SendEmailResult, TernPlugin } from './types.js';

type HookName = Exclude<keyof TernPlugin, 'name' | 'init'>;

export function entryView(entry: QueueEntry): EntryView {
  return structuredClone(entry);
}

/** Runs hooks in plugin order; the first result decides; failures are logged, never fatal. */
export class HookRunner {
  constructor(
    private readonly plugins: readonly LoadedPlugin[],
    private readonly logger: Logger,
  ) {}

  get names(): string[] {
    return this.plugins.map((p) => p.name);
  }

  has(hook: HookName): boolean {
    return this.plugins.some((p) => typeof p.plugin[hook] === 'function');
  }

  private async first<R>(hook: HookName, call: (plugin: TernPlugin) => unknown): Promise<R | undefined> {
    for (const { name, plugin } of this.plugins) {
      if (typeof plugin[hook] !== 'function') continue;
      try {
        const result = await call(plugin);
        if (result !== undefined && result !== null) return result as R;
      } catch (err) {
        this.logger.error({ plugin: name, hook, err: { message: (err as Error).message } }, 'plugin hook failed; carrying on without it');
      }
    }
    return undefined;
  }

  queueOutbound(message: Parameters<NonNullable<TernPlugin['queue_outbound']>>[0]): Promise<QueueOutboundResult> {
    return this.first('queue_outbound', (p) => p.queue_outbound!(message));
  }

  sendEmail(entry: QueueEntry): Promise<SendEmailResult> {
    return this.first('send_email', (p) => p.send_email!(entryView(entry)));
  }

  getMx(entry: QueueEntry): Promise<NextHop[] | undefined> {
    return this.first<NextHop[]>('get_mx', (p) => p.get_mx!(entryView(entry), entry.domain));
  }

  deferred(entry: QueueEntry, info: Parameters<NonNullable<TernPlugin['deferred']>>[1]): Promise<DeferredResult> {
    return this.first('deferred', (p) => p.deferred!(entryView(entry), info));
  }

  bounce(entry: QueueEntry, info: Parameters<NonNullable<TernPlugin['bounce']>>[1]): Promise<BounceResult> {
    return this.first('bounce', (p) => p.bounce!(entryView(entry), info));
  }

  /** Notification hooks: every plugin is called, results ignored. */
  async delivered(entry: QueueEntry, info: Parameters<NonNullable<TernPlugin['delivered']>>[1]): Promise<void> {
    await this.first('delivered', async (p) => {
      await p.delivered!(entryView(entry), info);
      return undefined;
    });
  }

  async logDisposition(record: DispositionRecord): Promise<void> {
    await this.first('log_disposition', async (p) => {
      await p.log_disposition!(record);
      return undefined;
    });
  }
}
