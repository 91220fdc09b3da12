/**
 * Example plugin: refuse mail to suppressed addresses before it is queued, so that a
 * known-bad recipient never costs a delivery attempt or a bounce.
 *
 * config/suppression_list: one address (user@example.com) or domain (@example.com) a line;
 * `#` starts a comment. The file is re-read when it changes.
 *
 * Enable it with a line `suppression-list` in config/plugins.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TernPlugin } from '../src/hooks/index.js';

let path = '';
let loadedAt = -1;
let suppressed = new Set<string>();

function current(): Set<string> {
  const mtime = existsSync(path) ? statSync(path).mtimeMs : 0;
  if (mtime !== loadedAt) {
    loadedAt = mtime;
    const text = mtime ? readFileSync(path, 'utf8') : '';
    suppressed = new Set(
      text
        .split(/\r?\n/)
        .map((l) => l.replace(/#.*$/, '').trim().toLowerCase())
        .filter(Boolean),
    );
  }
  return suppressed;
}

const plugin: TernPlugin = {
  name: 'suppression-list',
  init({ configDir }) {
    path = join(configDir, 'suppression_list');
    current();
  },
  queue_outbound({ envelope }) {
    const list = current();
    const hit = envelope.recipients.find((r) => {
      const address = r.address.toLowerCase();
      return list.has(address) || list.has(address.slice(address.lastIndexOf('@')));
    });
    if (!hit) return undefined;
    return { action: 'deny', reply: { code: 550, enhanced: '5.7.1', text: `Recipient ${hit.address} is on the suppression list` } };
  },
};

export default plugin;
