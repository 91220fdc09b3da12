/**
 * Calls `onGone` once when `parent` (the process that started this one, read at its start) exits (it is then adopted by
 * init or a subreaper, and its parent id changes). `npm start` needs it: npm passes SIGTERM
 * and SIGINT on to the daemon, but a SIGHUP or SIGKILL ends npm alone, and the daemon
 * would run on, orphaned, holding its ports. Linux has PR_SET_PDEATHSIG for this; Node
 * does not expose it, so the parent id is polled (a cheap getppid() a second).
 */
export function watchParent(parent: number, onGone: () => void, everyMs = 1000): () => void {
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone();
  }, everyMs).unref();
  return () => clearInterval(timer);
}
