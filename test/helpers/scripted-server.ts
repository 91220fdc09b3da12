import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { listenOn } from './ports.js';

/**
 * A deliberately misbehaving SMTP peer on a real socket: it greets, splits what it reads
 * into CRLF lines, and hands each to the session's own handler (made per connection, so
 * that it can keep state such as "in DATA"). Port 0 lets the kernel pick one (`portOf`
 * from ports.ts reads it).
 */
export function scriptedServer(host: string, port: number, greeting: string, session: (socket: Socket) => (line: string) => void): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.write(`${greeting}\r\n`);
    const onLine = session(socket);
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n')) !== -1) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        onLine(line);
      }
    });
  });
  return listenOn(server, host, port).then(() => server);
}
