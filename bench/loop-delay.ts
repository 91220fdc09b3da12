import { get as httpGet } from 'node:http';
import type { TernProcess } from '../test/helpers/tern-process.js';
import { round } from './sink-figures.js';

/**
 * GET on a connection of its own, as a monitoring probe would: a kept-alive connection
 * can be closed by the server's keep-alive timer just as a request goes out on it (which
 * is what happens after a stall), and the probe would fail instead of measuring.
 * Resolves with the body, or undefined when the request failed.
 */
export function probe(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = httpGet(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? body : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('error', () => resolve(undefined));
  });
}

/**
 * Tern's event-loop delay since the previous scrape: prom-client's default metrics keep
 * a `monitorEventLoopDelay` histogram (resolution 10 ms) and reset it at every scrape of
 * /metrics, so a scrape at the start of a window and one at its end give the window's own
 * p50, p99 and max. Nothing else scrapes this daemon during the bench.
 */
export async function eventLoopDelay(tern: TernProcess): Promise<{ p50_ms: number; p99_ms: number; max_ms: number }> {
  const text = await probe(`${tern.api}/metrics`);
  if (text === undefined) throw new Error('GET /metrics failed');
  const get = (name: string) => {
    const m = new RegExp(`^nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`/metrics has no nodejs_eventloop_lag_${name}_seconds`);
    return round(Number(m[1]) * 1000, 1);
  };
  return { p50_ms: get('p50'), p99_ms: get('p99'), max_ms: get('max') };
}
