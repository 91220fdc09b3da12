import { spawn } from 'node:child_process';

/** systemd-notify waits for the manager to read the message (its barrier, 5 s); past this it is stuck. */
const NOTIFY_TIMEOUT_MS = 10_000;

/**
 * Tells a supervisor that the daemon is listening (sd_notify(3) READY=1), when one asked by
 * setting NOTIFY_SOCKET (systemd's Type=notify). Node has no unix datagram sockets, so Debian's
 * systemd-notify sends it: the unit needs NotifyAccess=all, as the sender is a child. Resolves
 * to a one-line error when the message could not be sent (systemd then fails the start at
 * TimeoutStartSec), undefined when it was sent or nobody asked.
 */
export async function notifyReady(status: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return undefined;
  // Only the daemon is the service: hooks and anything else it starts must not speak for it.
  delete env.NOTIFY_SOCKET;
  return new Promise((resolve) => {
    const child = spawn('systemd-notify', ['--ready', `--status=${status}`], {
      env: { ...env, NOTIFY_SOCKET: socket },
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: NOTIFY_TIMEOUT_MS,
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (stderr.length < 1000) stderr += s;
    });
    child.on('error', (err) => resolve(`cannot run systemd-notify (${err.message}); systemd was not told that Tern is ready`));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(undefined);
      resolve(`systemd-notify --ready failed (${signal ?? `exit ${code}`}${stderr.trim() ? `: ${stderr.trim().split('\n')[0]}` : ''}); systemd was not told that Tern is ready`);
    });
  });
}
