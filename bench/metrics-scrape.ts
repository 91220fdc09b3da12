import { performance } from 'node:perf_hooks';

const HEALTH_EVERY_MS = 5;

const round = (n: number, digits = 1) => +n.toFixed(digits);

/** One GET, timed; the body for the caller to read figures from. */
async function timedGet(url: string): Promise<{ ms: number; text: string }> {
  const t0 = performance.now();
  const res = await fetch(url);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return { ms: performance.now() - t0, text };
}

/**
 * One scrape of /metrics, timed, while GET /health is asked again every 5 ms after each
 * answer: the slowest /health answer during the scrape shows whether the daemon kept
 * answering (its event loop free) while it counted the queue.
 */
async function scrapeOnce(api: string): Promise<{ scrape_ms: number; health_max_ms: number; text: string }> {
  let running = true;
  let healthMax = 0;
  const poll = (async () => {
    while (running) {
      const { ms } = await timedGet(`${api}/health`);
      healthMax = Math.max(healthMax, ms);
      await new Promise((r) => setTimeout(r, HEALTH_EVERY_MS));
    }
  })();
  const { ms, text } = await timedGet(`${api}/metrics`);
  running = false;
  await poll;
  return { scrape_ms: round(ms), health_max_ms: round(healthMax), text };
}

const value = (text: string, line: string) => {
  const m = new RegExp(`^${line.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

/**
 * What a scrape of /metrics costs on a big queue: the first (the queue counted afresh,
 * the queue directory walked), one right after (the count reused), and one once the
 * count is stale again; each with the slowest /health answer meanwhile, and the
 * daemon's own largest event-loop delay over the three (prom-client's histogram, reset
 * at every scrape, read by one more scrape).
 */
export async function measureScrapes(api: string): Promise<Record<string, unknown>> {
  const started = performance.now();
  const cold = await scrapeOnce(api);
  const reused = await scrapeOnce(api);
  // A count is reused for 10 times as long as it took: wait that out (and the spool walk's 30 s minimum is not).
  await new Promise((r) => setTimeout(r, Math.max(2000, cold.scrape_ms * 12)));
  const fresh = await scrapeOnce(api);
  // The queue directory's walk, started by the first scrape, runs on in the background.
  let last = await timedGet(`${api}/metrics`);
  for (let i = 0; i < 600 && !value(last.text, 'tern_spool_bytes'); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    last = await timedGet(`${api}/metrics`);
  }
  const spoolSeconds = (performance.now() - started) / 1000;
  const lagMax = (t: string) => value(t, 'nodejs_eventloop_lag_max_seconds') ?? NaN;
  return {
    scrape_first_ms: cold.scrape_ms,
    scrape_reused_ms: reused.scrape_ms,
    scrape_recount_ms: fresh.scrape_ms,
    health_max_during_scrapes_ms: Math.max(cold.health_max_ms, reused.health_max_ms, fresh.health_max_ms),
    event_loop_max_delay_ms: round(Math.max(lagMax(reused.text), lagMax(fresh.text), lagMax(last.text)) * 1000),
    metrics_queue_entries: ['scheduled', 'deferred', 'held', 'in-flight'].reduce((n, s) => n + (value(cold.text, `tern_queue_entries{state="${s}"}`) ?? 0), 0),
    spool_walk_s_at_most: round(spoolSeconds),
    metrics_spool_mb: round((value(last.text, 'tern_spool_bytes') ?? 0) / 1e6),
    metrics_spool_files: value(last.text, 'tern_spool_files'),
  };
}
