import { join } from 'node:path';
import { loadConfig } from '../config/index.js';
import { apiTarget } from './control-client.js';
import type { ConfigLocation } from './locations.js';

export interface HealthOptions {
  readonly config: ConfigLocation;
  readonly json: boolean;
  readonly api?: string;
  readonly token?: string;
}

/** A container's HEALTHCHECK gives up after its own timeout; answer well before it. */
const TIMEOUT_MS = 4000;
/** /health answers a few dozen bytes; anything longer is not Tern. */
const MAX_BODY = 4096;

interface Health {
  status: string;
  queued?: number;
  in_flight?: number;
}

/**
 * `tern health`: asks the admin API that config/http.ini (or --api/TERN_API) names for /health.
 * Exit 0 when the daemon answers "ok", 1 with one line on stderr otherwise, so that Docker's
 * HEALTHCHECK, a load balancer script or a monitoring check needs no address of its own.
 */
export async function healthCommand(o: HealthOptions): Promise<number> {
  const fail = (why: string) => {
    process.stderr.write(`tern: unhealthy: ${why}\n`);
    return 1;
  };
  if (!o.api && !process.env.TERN_API && adminDisabled(o.config.dir)) return fail(`the admin API is disabled (${join(o.config.dir, 'http.ini')}: disabled=true); tern health asks it`);
  const target = apiTarget(o);
  const url = `${target.base}/health`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const e = err as Error & { cause?: Error };
    const why = e.name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS / 1000} s` : (e.cause?.message ?? e.message);
    return fail(`cannot reach the admin API at ${url} (${why}); is the daemon running?`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    return fail(`${url} answered HTTP ${res.status}`);
  }
  let body: Health;
  try {
    body = JSON.parse(await boundedText(res)) as Health;
  } catch {
    return fail(`${url} answered something that is not Tern's health record`);
  }
  if (body.status !== 'ok') return fail(`${url} reports status ${JSON.stringify(body.status)}`);
  process.stdout.write(o.json ? JSON.stringify(body) + '\n' : `ok: ${body.queued ?? 0} queued, ${body.in_flight ?? 0} in flight (${target.base})\n`);
  return 0;
}

async function boundedText(res: Response): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Error('too long');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function adminDisabled(configDir: string): boolean {
  try {
    return loadConfig(configDir).http.disabled;
  } catch {
    // A broken config is the daemon's to report: health still asks the address it can work out.
    return false;
  }
}
