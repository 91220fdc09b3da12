import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from '../core/index.js';
import cluster from 'node:cluster';
import { clusterPlan, startDaemon, startPrimary, startWorker } from '../daemon/index.js';
import { hashPassword } from '../listener/index.js';
import { queueCommand } from './commands.js';
import { domainCommand } from './domain-command.js';
import { clusterCommand } from './cluster-command.js';
import { dkimCommand } from './dkim-command.js';
import type { CliOptions } from './commands.js';
import { configCheck, configShow } from './config-commands.js';
import { ApiError } from './control-client.js';
import { healthCommand } from './health.js';
import { notifyReady } from './readiness.js';
import { locateConfig, locateQueue, MissingConfigDir, requireConfig } from './locations.js';
import { watchParent } from './parent-watch.js';

const HELP = `Usage: tern <command> [options]

Commands:
  start [--config DIR] [--queue DIR]   run the daemon in the foreground
        [--exit-with-parent]           stop (as on SIGTERM) when the process that started it exits
  queue ls [--domain D] [--state S] [--sender ADDR] [--recipient ADDR] [--older-than SECONDS]
           [--limit N] [--offset N]
  queue show ID                        one entry, or every entry of a message id
  queue rm|hold|release|bounce ID… | ALL | - [--domain D] [--state S] [--reason TEXT]
                                       as postsuper: many ids (entries or messages), ALL,
                                       a selection, or ids on stdin ('-', one per line)
  queue flush [--domain D]             make deferred entries due now
  domain suspend D [--duration 2h] [--reason TEXT] | resume D | ls
                                       pause delivery to one domain (until resumed, or for a while)
  domain override D [--max-connections N] [--max-message-rate 10/min] --duration 90m [--reason TEXT]
                                       lower a domain's (or an mx:pattern's) limits for a while
  domain clear D                       lift an override (resume lifts a suspension)
  cluster status                       the nodes sharing limits through Redis (redis.ini): heartbeats,
                                       queues, sessions and connection leases of each
  dkim keygen --domain D --selector S [--algorithm rsa-sha256|ed25519-sha256] [--bits 2048]
              [--out FILE] [--force]   write a DKIM key (config/dkim/D.S.pem, mode 0600) and
                                       print the DNS TXT record and the dkim.ini section
  config check                         read the config as start does; one line per problem
  config show [-n]                     effective settings with defaults (-n: only non-default ones)
  health [--config DIR]                exit 0 when the daemon's admin API (http.ini) says it is healthy
  hash-password [--user NAME]          read a password on stdin, print the line for config/auth_users

Options:
  --config DIR     config directory, for every command (env TERN_CONFIG; default ./config,
                   else the config/ of Tern's installation directory)
  --queue DIR      queue directory for start (env TERN_QUEUE; default queue/ beside the
                   default config directory)
  --json           machine-readable output (queue, domain, cluster, config check, config show)
  --api URL        admin API (default: from the config's http.ini; env TERN_API)
  --token TOKEN    bearer token (default: the config's http.ini; env TERN_API_TOKEN)
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

/** A command line that makes no sense: exit 2 with the usage line, as for any bad usage. */
function badUsage(text: string, usage: string): number {
  process.stderr.write(`tern: ${text}\nusage: ${usage}\n`);
  return 2;
}

/** The positionals a command takes; any more is an error (not silently ignored). */
const ARITY: Record<string, { readonly max: number; readonly usage: string }> = {
  start: { max: 1, usage: 'tern start [--config DIR] [--queue DIR] [--exit-with-parent]' },
  'hash-password': { max: 1, usage: 'tern hash-password [--user NAME] < password' },
  health: { max: 1, usage: 'tern health [--config DIR] [--json]' },
  config: { max: 2, usage: 'tern config check | show [-n]' },
};

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (!e.code?.startsWith('ERR_PARSE_ARGS')) throw err;
    return badUsage(e.message, 'tern <command> [options] (tern --help)');
  }
  const { values, positionals } = parsed;
  return run(values, positionals);
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      queue: { type: 'string' },
      'exit-with-parent': { type: 'boolean', default: false },
      'non-default': { type: 'boolean', short: 'n', default: false },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      user: { type: 'string' },
      json: { type: 'boolean', default: false },
      api: { type: 'string' },
      token: { type: 'string' },
      domain: { type: 'string' },
      state: { type: 'string' },
      'older-than': { type: 'string' },
      sender: { type: 'string' },
      recipient: { type: 'string' },
      limit: { type: 'string' },
      offset: { type: 'string' },
      duration: { type: 'string' },
      reason: { type: 'string' },
      'max-connections': { type: 'string' },
      'max-message-rate': { type: 'string' },
      selector: { type: 'string' },
      algorithm: { type: 'string' },
      bits: { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean', default: false },
    },
  });
}

async function run(values: ReturnType<typeof parse>['values'], positionals: string[]): Promise<number> {
  const config = locateConfig(values.config, process.env);
  const opts: CliOptions = {
    config,
    json: values.json!,
    api: values.api,
    token: values.token,
    domain: values.domain,
    state: values.state,
    olderThan: values['older-than'],
    sender: values.sender,
    recipient: values.recipient,
    limit: values.limit,
    offset: values.offset,
    nonDefault: values['non-default'],
    duration: values.duration,
    reason: values.reason,
    maxConnections: values['max-connections'],
    maxMessageRate: values['max-message-rate'],
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
  const arity = ARITY[command];
  if (arity && positionals.length > arity.max) return badUsage(`unexpected argument '${positionals[arity.max]}'`, arity.usage);
  // A directory the operator named must be there, whatever the command needs it for.
  if (config.explicit && command !== 'hash-password') requireConfig(config);
  switch (command) {
    case 'start': {
      const configDir = requireConfig(config);
      if (cluster.isWorker) {
        // One of nodes=N workers: the primary is the service; a worker stops when the primary goes.
        delete process.env.NOTIFY_SOCKET;
        await (await startWorker({ configDir })).stopped;
        return 0;
      }
      const parent = values['exit-with-parent'] ? process.ppid : undefined;
      const queueDir = locateQueue(values.queue, process.env, config);
      // nodes=1 with no shard to adopt: the single process, as before; else a primary and its workers.
      const plan = clusterPlan(configDir, queueDir);
      const daemon = plan ? await startPrimary({ configDir, queueDir, plan, handleSignals: true }) : await startDaemon({ configDir, queueDir, handleSignals: true });
      // Gone parent: the same clean stop as a supervisor's SIGTERM (logged as such).
      if (parent !== undefined) watchParent(parent, () => process.kill(process.pid, 'SIGTERM'));
      const notReady = await notifyReady(`listening on ${daemon.addresses.map((a) => `${a.host}:${a.port}`).join(', ')}`);
      if (notReady) process.stderr.write(`tern: ${notReady}\n`);
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
    case 'cluster':
      return clusterCommand(positionals.slice(1), opts);
    case 'health':
      return healthCommand(opts);
    case 'dkim':
      return dkimCommand(positionals.slice(1), { ...opts, selector: values.selector, algorithm: values.algorithm, bits: values.bits, out: values.out, force: values.force! });
    case 'config':
      if (positionals[1] === 'check') return configCheck(opts);
      if (positionals[1] === 'show') return configShow(opts);
      break;
  }
  process.stderr.write(`tern: unknown command '${positionals.join(' ')}'\n\n${HELP}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof MissingConfigDir) {
      process.stderr.write(`tern: ${err.message}\n`);
      process.exit(78); // EX_CONFIG, as for a broken config
    }
    if (err instanceof ApiError) {
      process.stderr.write(`tern: ${err.message}\n`);
      process.exit(1);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`tern: configuration error: ${err.message}\n`);
      process.exit(78); // EX_CONFIG (sysexits.h): systemd and scripts can tell a config error apart
    }
    const e = err as NodeJS.ErrnoException & { exitCode?: number };
    process.stderr.write(`tern: ${e?.code ? e.code + ': ' : ''}${e?.message ?? String(err)}\n`);
    // A worker that could not start (nodes=N): its own exit status (78 for a config error).
    process.exit(typeof e?.exitCode === 'number' ? e.exitCode : 1);
  },
);
