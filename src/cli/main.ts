import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from '../core/index.js';
import { startDaemon } from '../daemon.js';
import { hashPassword } from '../listener/index.js';

const HELP = `Usage: tern <command> [options]

Commands:
  start [--config DIR] [--queue DIR]   run the daemon in the foreground (defaults ./config, ./queue)
  hash-password                        read a password on stdin, print the line for config/auth_users

Options:
  -h, --help       show this help
  -v, --version    print the version

Signals: SIGHUP flushes deferred mail and reloads config; SIGTERM/SIGINT stop cleanly.`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', default: './config' },
      queue: { type: 'string', default: './queue' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      user: { type: 'string' },
    },
  });
  if (values.version) {
    process.stdout.write(`tern ${version()}\n`);
    return 0;
  }
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(HELP + '\n');
    return values.help ? 0 : 2;
  }
  switch (command) {
    case 'start': {
      const daemon = await startDaemon({ configDir: values.config!, queueDir: values.queue!, handleSignals: true });
      await daemon.stopped;
      return 0;
    }
    case 'hash-password': {
      const password = await readStdin();
      if (!password) {
        process.stderr.write('tern: no password on stdin\n');
        return 2;
      }
      const hash = await hashPassword(password);
      process.stdout.write(values.user ? `${values.user}:${hash}\n` : `${hash}\n`);
      return 0;
    }
    default:
      process.stderr.write(`tern: unknown command '${command}'\n\n${HELP}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`tern: configuration error: ${err.message}\n`);
      process.exit(78); // EX_CONFIG (sysexits.h): systemd and scripts can tell a config error apart
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`tern: ${e?.code ? e.code + ': ' : ''}${e?.message ?? String(err)}\n`);
    process.exit(1);
  },
);
