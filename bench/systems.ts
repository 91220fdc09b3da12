import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { startPostfixInstance } from '../test/helpers/postfix.js';
import { waitForPort } from '../test/helpers/wait-for-port.js';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { World } from '../test/helpers/world.js';
import { tempQueue } from '../test/helpers/tern-process.js';
import type { TernProcess } from '../test/helpers/tern-process.js';

/** A mail server being measured: where it listens and which processes are its own. */
export interface SystemUnderTest {
  readonly name: string;
  readonly port: number;
  /** Its processes now (Postfix has several); for CPU and RSS. */
  pids(): number[];
  /** The one process that serves SMTP, when there is one (Postfix has none: smtpd, cleanup, qmgr …). */
  servingPid(): number | undefined;
  /** Its processes by name, for CPU per process (Tern with nodes=N: primary, shard0, shard1 …). */
  processes?(): { name: string; pid: number }[];
  stop(): Promise<void>;
}

export type Mode = 'ingest' | 'relay';

/** The relay's next hop for every bench domain: the sink. */
export interface SinkAddress {
  readonly host: string;
  readonly port: number;
}

const TICKS_PER_SECOND = 100;

/** CPU seconds used so far by the given processes (user + system). */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process has exited; its CPU is no longer visible.
    }
  }
  return ticks / TICKS_PER_SECOND;
}

/** Busy CPU seconds of the whole machine so far (every core, every process). */
export function machineCpuSeconds(): number {
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = f.map(Number);
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

/** The process and all its descendants (bin/haraka runs haraka.js as a child). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // exited
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []));
  return tree;
}

/** A "<field>: N kB" line of /proc/<pid>/<file>, summed over the processes, in MB; an exited process counts 0. */
function procMb(pids: number[], file: 'status' | 'smaps_rollup', field: string): number {
  const line = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm');
  let kb = 0;
  for (const pid of pids) {
    try {
      kb += Number(line.exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'))?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return kb / 1024;
}

/** Proportional set size summed over the processes, in MB: shared pages counted once. */
export const pssMb = (pids: number[]) => procMb(pids, 'smaps_rollup', 'Pss');
/** Peak resident set (VmHWM) summed over the processes, in MB. */
export const peakRssMb = (pids: number[]) => procMb(pids, 'status', 'VmHWM');
/** Resident set now, in MB. */
export const rssMb = (pids: number[]) => procMb(pids, 'status', 'VmRSS');

/**
 * Tern; with `nodes` > 1 (smtp.ini nodes=N) a primary and N workers, measured together and
 * one by one; `files`: more config files (the DKIM scenario's dkim.ini and key).
 */
export async function startTern(world: World, mode: Mode, nodes = 1, files: Record<string, string> = {}): Promise<SystemUnderTest> {
  const queue = tempQueue();
  const tern: TernProcess = await world.tern({ outbound: mode === 'ingest' ? 'disabled=true' : 'concurrency_max=64', smtp: nodes > 1 ? `nodes=${nodes}` : '', files }, queue);
  const workers = (tern.records.find((r) => r.msg === 'tern listening')?.workers ?? []) as { shard: number | string; pid: number }[];
  // Tern still writes a record per reception and delivery (Haraka, at level warn, none);
  // only the harness's parsing of them is dropped, as Haraka's output is ignored too.
  tern.discardLogs();
  const processes = () => [{ name: nodes > 1 ? 'primary' : 'tern', pid: tern.child.pid! }, ...workers.map((w) => ({ name: `shard${w.shard}`, pid: w.pid }))];
  return {
    name: nodes > 1 ? `tern-nodes${nodes}` : 'tern',
    port: tern.port,
    pids: () => processes().map((p) => p.pid),
    processes,
    servingPid: () => (nodes > 1 ? undefined : tern.child.pid),
    stop: async () => {
      await tern.stop();
      rmSync(queue, { recursive: true, force: true });
    },
  };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export const HARAKA_VERSION = '3.3.4';

/** Haraka from the npm registry, installed once into a temporary directory and reused. */
function harakaHome(): string {
  const home = join(tmpdir(), `tern-bench-haraka-${HARAKA_VERSION}`);
  if (!existsSync(join(home, 'node_modules', 'Haraka', 'bin', 'haraka'))) {
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'package.json'), JSON.stringify({ name: 'tern-bench-haraka', private: true }));
    const res = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', `Haraka@${HARAKA_VERSION}`], { cwd: home, encoding: 'utf8' });
    if (res.status !== 0) throw new Error(`npm install Haraka@${HARAKA_VERSION} failed: ${res.stderr}`);
  }
  return home;
}

// Haraka resolves MX through a dns.Resolver of its own made at start from /etc/resolv.conf;
// its get_mx hook is the documented way to answer instead. This plugin asks the bench's
// DNS server (MX, then A) and keeps the answer, so Haraka pays less for DNS than Tern does.
// It also answers the reverse lookup of the client (lookup_rdns), which would otherwise
// wait for a resolver this machine cannot reach.
const HARAKA_BENCH_PLUGIN = `'use strict'
const { Resolver } = require('node:dns').promises
const resolver = new Resolver()
resolver.setServers([process.env.BENCH_DNS])
const known = new Map()
exports.hook_get_mx = async function (next, hmail, domain) {
  try {
    let mx = known.get(domain)
    if (!mx) {
      mx = []
      for (const r of await resolver.resolveMx(domain)) {
        for (const a of await resolver.resolve4(r.exchange)) mx.push({ priority: r.priority, exchange: a, port: 25 })
      }
      known.set(domain, mx)
    }
    next(OK, mx)
  } catch (err) {
    next(DENYSOFT, String(err))
  }
}
exports.hook_lookup_rdns = function (next) {
  next(OK, 'client.bench.test')
}
`;

export async function startHaraka(mode: Mode, dnsPort: number, port = 2600): Promise<SystemUnderTest> {
  const home = harakaHome();
  const dir = join(mkdtempSync(join(tmpdir(), 'tern-bench-haraka-cfg-')), 'haraka');
  const haraka = join(home, 'node_modules', 'Haraka', 'bin', 'haraka');
  // Haraka's own default configuration, then ours on top.
  execFileSync(process.execPath, [haraka, '-i', dir], { stdio: 'ignore' });
  mkdirSync(join(dir, 'queue'), { recursive: true });
  const files: Record<string, string> = {
    me: 'haraka.bench.test\n',
    'smtp.ini': `[main]\nlisten=127.0.0.1:${port}\n`,
    // Relaying for loopback clients (the relay plugin's ACL), and our MX answers.
    plugins: 'bench\nrelay\n',
    'relay.ini': '[relay]\nacl=true\n',
    'relay_acl_allow': '127.0.0.0/8\n',
    'outbound.ini': `local_mx_ok=true\nconcurrency_max=64\nenable_tls=true\n${mode === 'ingest' ? 'disabled=true\n' : ''}`,
    // Quieter than its default (info) so that logging costs it less than Tern's records cost Tern.
    'log.ini': '[main]\nlevel=warn\n',
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'config', name), text);
  writeFileSync(join(dir, 'plugins', 'bench.js'), HARAKA_BENCH_PLUGIN);
  const child = spawn(process.execPath, [haraka, '-c', dir], {
    env: { ...process.env, BENCH_DNS: `127.0.0.1:${dnsPort}`, NODE_PATH: join(home, 'node_modules') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
  try {
    await waitForPort('127.0.0.1', port, 'Haraka', 30000, () => (child.exitCode !== null ? `exited with ${child.exitCode}` : undefined));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${stderr.join('').slice(-2000)}`);
  }
  return {
    name: `haraka ${HARAKA_VERSION}`,
    port,
    pids: () => processTree(child.pid!),
    // bin/haraka runs haraka.js, which serves.
    servingPid: () => processTree(child.pid!)[1],
    stop: async () => {
      // bin/haraka runs haraka.js as a child: stop the whole tree, or a Haraka with a
      // disabled queue keeps retrying it every second through the next scenarios.
      const tree = processTree(child.pid!);
      for (const pid of tree) signal(pid, 'SIGTERM');
      const deadline = Date.now() + 5000;
      while (tree.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      for (const pid of tree.filter(alive)) signal(pid, 'SIGKILL');
      rmSync(join(dir, '..'), { recursive: true, force: true });
    },
  };
}

export const hasPostfix = spawnSync('sh', ['-c', 'command -v postfix'], { encoding: 'utf8' }).status === 0;

function postfixPids(configDir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(`MAIL_CONFIG=${configDir}`)) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/**
 * Postfix as the relay, in a temporary config_directory: smtpd on 127.0.0.1:<port> relaying
 * for loopback clients to the sink as relayhost (Postfix asks the system resolver, which
 * does not know the bench zone, so it is spared the MX lookups). Ingest puts every message
 * on hold (HOLD in the client restrictions): accepted durably, never delivered.
 */
export async function startPostfix(mode: Mode, sink: SinkAddress, port = 2601): Promise<SystemUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), 'tern-bench-postfix-'));
  const etc = await startPostfixInstance(dir, port, [
    'myhostname = postfix.bench.test',
    `relayhost = [${sink.host}]:${sink.port}`,
    mode === 'ingest' ? 'smtpd_client_restrictions = check_client_access static:HOLD' : '',
    'smtpd_relay_restrictions = permit_mynetworks, reject',
    'default_process_limit = 100',
    'smtp_destination_concurrency_limit = 64',
    'default_destination_concurrency_limit = 64',
    'message_size_limit = 52428800',
  ]);
  return {
    name: 'postfix',
    port,
    pids: () => postfixPids(etc),
    servingPid: () => undefined,
    stop: async () => {
      spawnSync('postfix', ['-c', etc, 'stop'], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 1000));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
