import type { IncomingMessage, Server } from 'node:http';
import { timingSafeEqual } from 'node:crypto';

/** http.ini `token`: the request's `Authorization: Bearer …` matches it (in constant time); no token, no check. */
export function bearerMatches(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  const a = Buffer.from(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '');
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Listens on a TCP address; returns the port it got (the kernel's pick for port 0). */
export async function listenOn(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : port;
}

/**
 * Stops accepting; a request in progress gets its answer, idle keep-alive connections are
 * closed. Resolves when the server has closed (at once when it never listened).
 */
export function closeServer(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
