export { HookRunner, entryView } from './runner.js';
export { loadPlugins } from './loader.js';
export type { TernPlugin, LoadedPlugin, EntryView, NextHop, QueueOutboundResult, SendEmailResult, DeferredResult, BounceResult } from './types.js';
