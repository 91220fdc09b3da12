/**
 * One /metrics for the machine under `nodes=N`: each worker's exposition with a `shard`
 * label on every sample, families merged so that each HELP and TYPE appears once (as
 * promtool requires). Workers are not summed here: `sum without (shard) (…)` in PromQL
 * does that, and gauges such as the oldest entry's age need max, not sum (prom-client's
 * AggregatorRegistry sums gauges unless each metric says otherwise, and would hide a
 * worker that is stuck). The primary's own process metrics come as `shard="primary"`.
 */

interface Family {
  readonly help?: string;
  readonly type?: string;
  readonly samples: string[];
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** `name{a="b"} 1` → `name{shard="K",a="b"} 1`. */
function labelled(sample: string, shard: string): string {
  const label = `shard="${escapeLabel(shard)}"`;
  const brace = sample.indexOf('{');
  const space = sample.indexOf(' ');
  if (brace >= 0 && (space < 0 || brace < space)) {
    const close = sample.indexOf('}', brace);
    return close === brace + 1 ? `${sample.slice(0, brace + 1)}${label}${sample.slice(close)}` : `${sample.slice(0, brace + 1)}${label},${sample.slice(brace + 1)}`;
  }
  return `${sample.slice(0, space)}{${label}}${sample.slice(space)}`;
}

/** Merges expositions (Prometheus text format 0.0.4), each under its shard label. */
export function mergeExpositions(parts: readonly { readonly shard: string; readonly text: string }[]): string {
  const families = new Map<string, Family>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { samples: [] }));
    return f;
  };
  for (const { shard, text } of parts) {
    let current: string | undefined;
    for (const line of text.split('\n')) {
      if (!line) continue;
      const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (meta) {
        current = meta[2];
        const f = family(current);
        if (meta[1] === 'HELP' && f.help === undefined) families.set(current, { ...f, help: line });
        if (meta[1] === 'TYPE' && f.type === undefined) families.set(current, { ...families.get(current)!, type: line });
        continue;
      }
      if (line.startsWith('#')) continue;
      // A sample belongs to the family of the TYPE line before it (histogram _bucket, _sum, _count included).
      const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
      if (!name) continue;
      family(current && name.startsWith(current) ? current : name).samples.push(labelled(line, shard));
    }
  }
  const out: string[] = [];
  for (const f of families.values()) {
    if (f.help) out.push(f.help);
    if (f.type) out.push(f.type);
    out.push(...f.samples);
  }
  return out.join('\n') + '\n';
}
