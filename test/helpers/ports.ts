import type { AddressInfo, Server } from 'node:net';

/**
 * Starts `server` on host:port and resolves with the port it got; port 0 (the default)
 * lets the kernel pick a free one, so that a test needs no privilege and no port of its
 * own. Rejects when the address cannot be had (EADDRINUSE, EACCES).
 */
export async function listenOn(server: Server, host: string, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return portOf(server);
}

/** The port a listening server is bound to. */
export function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

/** A test peer that can listen on its own address at a given port, and stop again. */
export interface PortListener {
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts peers on distinct addresses under one port number, the kernel's pick for the
 * first unless `fixed` names one: Tern delivers every MX host on one port (outbound.ini
 * `remote_port`), so the mail exchangers of one test must share it. When another address
 * has the kernel's pick taken already, they all start again on a new pick.
 */
export async function startOnOnePort(listeners: readonly PortListener[], fixed = 0, tries = 20): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const started: PortListener[] = [];
    try {
      let port = fixed;
      for (const l of listeners) {
        l.port = port;
        await l.start();
        started.push(l);
        port = l.port;
      }
      return port;
    } catch (err) {
      await Promise.all(started.map((l) => l.stop()));
      if (fixed !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= tries) throw err;
    }
  }
}
