/**
 * Figures of what one destination saw, from a recording sink's arrival times and session
 * open/close times (epoch ms): pure functions, shared by the shaping bench (issue #16) and
 * the Redis bench (issue #17), and tested on their own (test/unit/bench).
 */

/** A session as the sink saw it: open from `openedAt` to `closedAt` (still open when absent). */
export interface Interval {
  readonly openedAt: number;
  readonly closedAt?: number;
}

export const round = (x: number, digits = 1) => +x.toFixed(digits);

/**
 * Arrivals in each window [start, start + windowMs) with start from `from` (default: the
 * first arrival) by `stepMs`, for as long as the window ends by `to` + 1 ms (default: the last
 * arrival). `times` need not be sorted.
 */
export function windowCounts(times: readonly number[], windowMs: number, stepMs: number, from?: number, to?: number): number[] {
  const sorted = [...times].sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  const first = from ?? sorted[0];
  const last = to ?? sorted[sorted.length - 1];
  const counts: number[] = [];
  let lo = 0;
  let hi = 0;
  for (let start = first; start + windowMs <= last + 1; start += stepMs) {
    while (lo < sorted.length && sorted[lo] < start) lo++;
    if (hi < lo) hi = lo;
    while (hi < sorted.length && sorted[hi] < start + windowMs) hi++;
    counts.push(hi - lo);
  }
  return counts;
}

/**
 * The most sessions open at once; with `from`/`to`, only what was open inside [from, to]
 * (a session open before `from` and still open then counts from `from`). At the same
 * millisecond a close counts before an open: the close was answered first.
 */
export function maxAtOnce(sessions: readonly Interval[], from = -Infinity, to = Infinity): number {
  return peak(sessions, from, to).max;
}

/** As maxAtOnce, with the first moment the most were open (undefined when none was). */
export function peak(sessions: readonly Interval[], from = -Infinity, to = Infinity): { max: number; at?: number } {
  const events: { at: number; d: number }[] = [];
  for (const s of sessions) {
    const open = Math.max(s.openedAt, from);
    const close = s.closedAt ?? Infinity;
    if (close < from || s.openedAt > to || close <= open) continue;
    events.push({ at: open, d: 1 });
    if (close !== Infinity) events.push({ at: close, d: -1 });
  }
  events.sort((a, b) => a.at - b.at || a.d - b.d);
  let now = 0;
  let max = 0;
  let at: number | undefined;
  for (const e of events) {
    if ((now += e.d) > max) {
      max = now;
      at = e.at;
    }
  }
  return { max, at };
}

/**
 * The first moment at or after `from` when at least `n` of `sessions` are open at once
 * (undefined when never by `to`): when a freed slot was taken up again.
 */
export function firstAtLeast(sessions: readonly Interval[], n: number, from: number, to = Infinity): number | undefined {
  const events: { at: number; d: number }[] = [];
  for (const s of sessions) {
    const close = s.closedAt ?? Infinity;
    if (close <= from) continue;
    events.push({ at: Math.max(s.openedAt, from), d: 1 });
    if (close !== Infinity) events.push({ at: close, d: -1 });
  }
  events.sort((a, b) => a.at - b.at || a.d - b.d);
  let now = 0;
  for (const e of events) {
    if (e.at > to) return undefined;
    if ((now += e.d) >= n) return e.at;
  }
  return undefined;
}

/** Session time inside [from, to] over `m` sessions open all that time: how much of a connection limit was used. */
export function slotUse(sessions: readonly Interval[], m: number, from: number, to: number): number {
  if (to <= from) return 0;
  let open = 0;
  for (const s of sessions) open += Math.max(0, Math.min(s.closedAt ?? to, to) - Math.max(s.openedAt, from));
  return open / (m * (to - from));
}

/**
 * The longest time without an arrival inside [from, to], counting from `from` to the first
 * arrival and from the last one to `to`: how long deliveries stopped around an event.
 */
export function largestGap(times: readonly number[], from: number, to: number): number {
  const inside = times.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let prev = from;
  let gap = 0;
  for (const t of [...inside, to]) {
    gap = Math.max(gap, t - prev);
    prev = t;
  }
  return gap;
}

/** How many times each id arrived: ids missing from `expected`, and ids that arrived more than once. */
export function tally(expected: Iterable<string>, arrived: readonly (string | undefined)[]): { missing: string[]; duplicated: string[]; unexpected: number } {
  const seen = new Map<string, number>();
  for (const id of arrived) if (id !== undefined) seen.set(id, (seen.get(id) ?? 0) + 1);
  const want = new Set(expected);
  return {
    missing: [...want].filter((id) => !seen.has(id)),
    duplicated: [...seen].filter(([, n]) => n > 1).map(([id]) => id),
    unexpected: [...seen.keys()].filter((id) => !want.has(id)).length + arrived.filter((id) => id === undefined).length,
  };
}

/**
 * A rate limit R/s with burst B seen at the sink (GCRA: B at once, then one every 1/R s):
 * the average after the burst, the 1-s windows sliding by 100 ms against R + B.
 */
export function rateFigures(times: readonly number[], rate: number, burst: number): Record<string, number | boolean> {
  const sorted = [...times].sort((a, b) => a - b);
  const spanMs = sorted[sorted.length - 1] - sorted[0];
  // The last arrives (N - B) / R after the first.
  const average = ((sorted.length - burst) * 1000) / spanMs;
  const windows = windowCounts(sorted, 1000, 100);
  const max = Math.max(...windows);
  const limit = rate + burst;
  return {
    span_s: round(spanMs / 1000, 2),
    average_per_s: round(average, 2),
    average_error_pct: round((average / rate - 1) * 100, 2),
    max_1s_window: max,
    // Where it was, in seconds after the first arrival (the burst is at 0).
    max_window_at_s: round(windows.indexOf(max) / 10),
    window_limit: limit,
    windows_over_limit: windows.filter((w) => w > limit).length,
    windows: windows.length,
    ok: windows.every((w) => w <= limit) && Math.abs(average / rate - 1) <= 0.03,
  };
}

/**
 * max_connections=M seen at the sink while mail waited: the most sessions at once, and the
 * sessions' open time between the first and the last arrival over M × that span.
 */
export function connectionFigures(times: readonly number[], sessions: readonly (Interval & { transactions: number })[], m: number): Record<string, number | boolean> {
  const from = Math.min(...times);
  const to = Math.max(...times);
  const use = slotUse(sessions, m, from, to);
  const most = maxAtOnce(sessions);
  return {
    relay_s: round((to - from) / 1000, 2),
    msgs_per_s: round((times.length * 1000) / (to - from)),
    max_sessions_at_once: most,
    sessions: sessions.length,
    max_transactions_per_session: Math.max(...sessions.map((s) => s.transactions)),
    slot_use_pct: round(use * 100, 1),
    ok: most <= m && use >= 0.9,
  };
}
