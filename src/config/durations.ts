const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses a time span such as `90`, `30s`, `5m`, `2h` or `5d` into seconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/i.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_SECONDS[(m[2] || 's').toLowerCase()];
}

/**
 * Haraka's `temp_fail_intervals` grammar: a comma separated list of `<n><unit>[*<count>]`;
 * `1m, 5m*2, 1h*3` is [60, 300, 300, 3600, 3600, 3600] and `none` is the empty list
 * (fail on the first temporary failure). Returns undefined when malformed.
 */
export function parseTempFailIntervals(text: string): number[] | undefined {
  if (text.trim().toLowerCase() === 'none') return [];
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d+(?:\.\d+)?[smhd])\s*(?:\*\s*(\d+))?\s*$/i.exec(part);
    if (!m) return undefined;
    const seconds = parseDuration(m[1]);
    const count = m[2] === undefined ? 1 : Number(m[2]);
    if (seconds === undefined || count < 1 || count > 1000) return undefined;
    for (let i = 0; i < count; i++) out.push(seconds);
  }
  return out;
}
