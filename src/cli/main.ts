import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from '../core/index.js';
import { startDaemon } from '../daemon/index.js';
import { hashPassword } from '../listener/index.js';
import { configCheck, domainCommand, queueCommand } from './commands.js';
import type { CliOptions } from './commands.js';
import { ApiError } from './control-client.js';

const HELP = `Usage: tern <command> [options]

Commands:
  start [--config DIR] [--queue DIR]   run the daemon in the foreground (defaults ./config, ./queue)
  queue ls [--domain D] [--state S] [--older-than SECONDS] [--limit N] [--offset N]
  queue show ID | rm ID | hold ID | release ID | bounce ID
  queue flush [--domain D]             make deferred entries due now
  domain suspend D | resume D | ls     pause and resume delivery to one domain
  config check [--config DIR]          validate every config file, one line per problem
  hash-password [--user NAME]          read a password on stdin, print the line for config/auth_users

Options:
  --json           machine-readable output (queue, domain, config check)
  --api URL        admin API (default: from config/http.ini; env TERN_API)
  --token TOKEN    bearer token (default: config/http.ini; env TERN_API_TOKEN)
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
      json: { type: 'boolean', default: false },
      api: { type: 'string' },
      token: { type: 'string' },
      domain: { type: 'string' },
      state: { type: 'string' },
      'older-than': { type: 'string' },
      limit: { type: 'string' },
      offset: { type: 'string' },
    },
  });
  const opts: CliOptions = {
    config: values.config!,
    json: values.json!,
    api: values.api,
    token: values.token,
    domain: values.domain,
    state: values.state,
    olderThan: values['older-than'],
    limit: values.limit,
    offset: values.offset,
  };
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
    case 'queue':
      return queueCommand(positionals.slice(1), opts);
    case 'domain':
      return domainCommand(positionals.slice(1), opts);
    case 'config':
      if (positionals[1] !== 'check') break;
      return configCheck(opts);
  }
  process.stderr.write(`tern: unknown command '${positionals.join(' ')}'\n\n${HELP}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ApiError) {
      process.stderr.write(`tern: ${err.message}\n`);
      process.exit(1);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`tern: configuration error: ${err.message}\n`);
      process.exit(78); // EX_CONFIG (sysexits.h): systemd and scripts can tell a config error apart
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`tern: ${e?.code ? e.code + ': ' : ''}${e?.message ?? String(err)}\n`);
    process.exit(1);
  },
);
