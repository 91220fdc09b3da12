/**
 * At most this many long quantifiers (`*`, `+`, `{n,}`, or a range wider than LONG_RANGE) in
 * one pattern: each one multiplies the worst case by the text's length (three `.*` on 500
 * hostile characters: seconds; two: a millisecond).
 */
export const MAX_UNBOUNDED_QUANTIFIERS = 2;
const LONG_RANGE = 16;
/**
 * The text a pattern runs on at most (automation's MATCHED_BYTES): what a long quantifier can
 * take, in the cost estimate below.
 */
const TEXT_BYTES = 512;
/**
 * Short quantifiers (`?`, `{n,m}` no wider than LONG_RANGE) multiply the ways a match can be
 * tried too: `a?` ×18 then `a` ×18, or `a{0,16}` ×10 then `b`, count no long quantifier and
 * take seconds to minutes on a hostile reply. The product of their choices (m − n + 1 each)
 * is held to this (`a?` ×7, `\d{1,3}` ×4, `{0,15}` with `{0,7}`)…
 */
const MAX_SHORT_CHOICES = 128;
/** …and the product of every quantifier's choices (a long one: TEXT_BYTES) to two long quantifiers' worth. */
const MAX_CHOICES = TEXT_BYTES * TEXT_BYTES;

interface Frame {
  /** A quantifier that varies (`*`, `+`, `?`, `{n,m}` with n < m) somewhere inside. */
  varies: boolean;
  /** An alternation somewhere inside. */
  alternates: boolean;
}

/**
 * Why a pattern matched against text a remote server chooses could take exponential time
 * in JavaScript's backtracking engine, or undefined when it cannot. Refused: a group
 * repeated (`*`, `+`, `{n,}`, `{n,m}` with m > 1) that holds a varying quantifier or an
 * alternation (`(a+)+`, `(\w+\s*)*`, `(a|aa)+`, `(a?){20}`), backreferences and lookbehinds,
 * more than MAX_UNBOUNDED_QUANTIFIERS long quantifiers, and short ones (`?`, `{n,m}`) whose
 * choices multiply past MAX_SHORT_CHOICES, or with the long ones past MAX_CHOICES (the
 * backtracking of one start is at worst the product of every quantifier's choices). What is
 * accepted still costs up to about half a second on 512 hostile bytes (`a*a*b` against 500
 * `a`: O(n³)); exponential cases are refused. This is the first line only: the daemon runs
 * patterns in a worker thread that cuts a rule off at MATCH_BOUND_MS (AutomationMatcher),
 * so what passes here costs the worker that bound at most, and the event loop nothing.
 * Conservative: a few safe patterns are refused too, and the operator is told how to write them.
 */
export function regexHazard(source: string): string | undefined {
  const stack: Frame[] = [{ varies: false, alternates: false }];
  let last: 'atom' | Frame | undefined;
  let unbounded = 0;
  let shortChoices = 1;
  let choices = 1;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    const top = stack[stack.length - 1];
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      if (/[1-9]/.test(next) || (next === 'k' && source[i + 2] === '<')) return 'a backreference can take exponential time on a hostile reply';
      i++;
      last = 'atom';
      continue;
    }
    if (c === '[') {
      i++;
      if (source[i] === '^') i++;
      if (source[i] === ']') i++;
      while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
      last = 'atom';
      continue;
    }
    if (c === '(') {
      if (source.startsWith('(?<=', i) || source.startsWith('(?<!', i)) return 'a lookbehind is not allowed (it can take quadratic or worse time on a hostile reply)';
      stack.push({ varies: false, alternates: false });
      last = undefined;
      continue;
    }
    if (c === ')') {
      if (stack.length > 1) {
        const frame = stack.pop()!;
        const parent = stack[stack.length - 1];
        parent.varies ||= frame.varies;
        parent.alternates ||= frame.alternates;
        last = frame;
      }
      continue;
    }
    if (c === '|') {
      top.alternates = true;
      last = undefined;
      continue;
    }
    let min: number | undefined;
    let max: number | undefined;
    let length = 1;
    if (c === '*') [min, max] = [0, Infinity];
    else if (c === '+') [min, max] = [1, Infinity];
    else if (c === '?') [min, max] = [0, 1];
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i));
      if (m) {
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        length = m[0].length;
      }
    }
    if (min === undefined || max === undefined || last === undefined) {
      last = 'atom';
      continue;
    }
    i += length - 1;
    if (source[i + 1] === '?') i++;
    if (max > 1 && last !== 'atom' && (last.varies || last.alternates)) {
      return 'a repeated group holding a quantifier or an alternation (such as (a+)+, (\\w+\\s*)* or (a|aa)+) can take exponential time on a hostile reply: repeat single characters or classes instead';
    }
    if (min !== max) top.varies = true;
    if (max - min > LONG_RANGE && ++unbounded > MAX_UNBOUNDED_QUANTIFIERS) return `more than ${MAX_UNBOUNDED_QUANTIFIERS} unbounded quantifiers (*, +, {n,} or a range wider than ${LONG_RANGE}) can take polynomial time on a hostile reply`;
    if (min !== max) {
      const long = max - min > LONG_RANGE;
      if (!long && (shortChoices *= max - min + 1) > MAX_SHORT_CHOICES) return `optional and ranged quantifiers (?, {n,m}) whose choices multiply past ${MAX_SHORT_CHOICES} (such as a?a?a?a?a?a?a?a? or a{0,16}a{0,16}) can take exponential time on a hostile reply`;
      if ((choices *= long ? TEXT_BYTES : max - min + 1) > MAX_CHOICES) return `quantifiers whose choices multiply past two unbounded ones' (such as .*a.*b? or .*x.*y{0,3}) can take polynomial time on a hostile reply`;
    }
    last = undefined;
  }
  return undefined;
}
