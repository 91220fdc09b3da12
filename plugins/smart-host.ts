/**
 * Example plugin: send mail for some (or all) destination domains through a smart host
 * instead of their MX, with AUTH when credentials are given (sent only over TLS).
 *
 * config/smart_host.ini:
 *   host=smtp.provider.example     ; name or IP
 *   port=587                       ; default 25
 *   domains=*                      ; comma separated destination domains, or * for all
 *   auth_user=me@example.com       ; optional
 *   auth_pass=secret
 *
 * Enable it with a line `smart-host` in config/plugins (the compiled dist/plugins/smart-host.js).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'ini';
import type { NextHop, TernPlugin } from '../src/hooks/index.js';

interface SmartHost {
  hop: NextHop;
  domains: Set<string> | '*';
}

let settings: SmartHost | undefined;

const plugin: TernPlugin = {
  name: 'smart-host',
  init({ configDir }) {
    const raw = parse(readFileSync(join(configDir, 'smart_host.ini'), 'utf8')) as Record<string, string>;
    if (!raw.host) throw new Error('smart_host.ini: host is required');
    const domains = (raw.domains ?? '*').trim();
    settings = {
      hop: {
        host: raw.host,
        port: raw.port ? Number(raw.port) : undefined,
        auth_user: raw.auth_user || undefined,
        auth_pass: raw.auth_pass || undefined,
      },
      domains: domains === '*' ? '*' : new Set(domains.split(',').map((d) => d.trim().toLowerCase())),
    };
  },
  get_mx(_entry, domain) {
    if (!settings) return undefined;
    if (settings.domains === '*' || settings.domains.has(domain)) return [settings.hop];
    return undefined;
  },
};

export default plugin;
