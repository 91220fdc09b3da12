import { connect } from 'node:net';

/**
 * Resolves once host:port accepts a TCP connection (a server started as another process
 * is ready). `gaveUp` may say why to stop waiting early (the process exited).
 */
export async function waitForPort(host: string, port: number, what: string, timeoutMs: number, gaveUp?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = gaveUp?.();
    if (why) throw new Error(`${what} ${why} before listening on ${host}:${port}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, host, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
