import { spawnSync } from 'node:child_process';
import { percentile, runLoad } from './load-generator.js';
import type { ConnectionMode, LoadShape } from './load-generator.js';
import { smtpSourceSeconds } from './smtp-source.js';
import type { Nagle } from './smtp-session.js';
import type { Sink } from './sink.js';
import { cpuSeconds, machineCpuSeconds, peakRssMb, pssMb } from './systems.js';
import type { Mode, SystemUnderTest } from './systems.js';

export type Start = (mode: Mode) => Promise<SystemUnderTest>;

/** Who sends the load and how: the bench's own client (raw sockets), or Postfix's smtp-source. */
export interface Variant {
  readonly generator: 'bench' | 'smtp-source';
  readonly connection: ConnectionMode;
  /** The bench client's socket option; smtp-source keeps its own. */
  readonly nagle?: Nagle;
}

/** The fields that name a variant in a line of figures (and key its ratios). */
export function variantFields(v: Variant): Record<string, string> {
  return { generator: v.generator, connection: v.connection, ...(v.nagle ? { nagle: v.nagle } : {}) };
}

const round = (x: number, digits = 1) => +x.toFixed(digits);

/** CPU seconds of each named process of the system so far (nodes=N: the primary and each worker). */
function cpuByProcess(sut: SystemUnderTest): Map<string, number> {
  return new Map((sut.processes?.() ?? []).map((p) => [p.name, cpuSeconds([p.pid])]));
}

/**
 * CPU each process used during the run, and messages per CPU-second of the system (what
 * one core of it handles; times the cores, what nodes=cpus could reach when nothing else
 * limits it).
 */
function cpuFields(sut: SystemUnderTest, before: Map<string, number>, total: number, messages: number): Record<string, number> {
  const per: Record<string, number> = {};
  for (const [name, cpu] of cpuByProcess(sut)) per[`cpu_s_${name}`] = round(cpu - (before.get(name) ?? 0), 2);
  return { cpu_s: round(total, 2), ...per, msgs_per_cpu_s: round(messages / total) };
}

/** Latency figures of a bench client run; smtp-source times nothing but the whole run. */
function latencyFields(latencies: number[] | undefined, connectLatencies: number[] | undefined, connection: ConnectionMode): Record<string, number> {
  return {
    ...(latencies?.length ? { p50_ms: round(percentile(latencies, 50), 2), p99_ms: round(percentile(latencies, 99), 2) } : {}),
    ...(connection === 'per-message' && connectLatencies?.length
      ? { connect_p50_ms: round(percentile(connectLatencies, 50), 2), connect_p99_ms: round(percentile(connectLatencies, 99), 2) }
      : {}),
  };
}

/** Runs one load of the variant against host:port; seconds from its first byte to its last 250. */
async function drive(host: string, port: number, shape: LoadShape, v: Variant): Promise<{ seconds: number; latencies?: number[]; connectLatencies?: number[] }> {
  if (v.generator === 'smtp-source') return { seconds: await smtpSourceSeconds(`${host}:${port}`, shape, v.connection) };
  return runLoad(host, port, shape, { connection: v.connection, nagle: v.nagle ?? 'off' });
}

/**
 * Writes back every dirty page before a scenario: with ext4 in ordered mode an fsync
 * commits the whole journal transaction, so the first fsyncs of a scenario would
 * otherwise pay for what the previous one left unwritten (Haraka's queue files are
 * never fsynced).
 */
function settle(): void {
  spawnSync('sync');
}

/**
 * Peak RSS of the serving process (Tern, haraka.js), and the PSS of all of the system's
 * processes at the end of the run: Postfix is a dozen processes sharing pages, whose
 * RSS added up would count the shared ones many times.
 */
function memory(sut: SystemUnderTest): Record<string, number> {
  const serving = sut.servingPid();
  return { ...(serving === undefined ? {} : { peak_rss_mb: round(peakRssMb([serving])) }), pss_mb: round(pssMb(sut.pids())) };
}

/** Messages/s acknowledged with 250 while delivery is paused; latency from "." to 250 (and connect → 220). */
export async function ingest(start: Start, shape: LoadShape, v: Variant): Promise<Record<string, unknown>> {
  settle();
  const sut = await start('ingest');
  try {
    const cpu0 = cpuSeconds(sut.pids());
    const each0 = cpuByProcess(sut);
    const load = await drive('127.0.0.1', sut.port, shape, v);
    const cpu = cpuSeconds(sut.pids()) - cpu0;
    return {
      scenario: 'ingest', system: sut.name, ...variantFields(v), ...shape,
      msgs_per_s: round(shape.messages / load.seconds),
      ...latencyFields(load.latencies, load.connectLatencies, v.connection),
      cpu_s_per_1000: round((cpu / shape.messages) * 1000, 2), ...memory(sut),
      ...(sut.processes ? cpuFields(sut, each0, cpu, shape.messages) : {}),
    };
  } finally {
    await sut.stop();
  }
}

/**
 * First byte sent to the last transaction received by the sink, delivery on. `expected`
 * is how many transactions the sink sees from one load; `ceiling` the same variant's
 * load straight into a sink.
 */
export async function relay(start: Start, sink: Sink, shape: LoadShape, v: Variant, expected: number, ceiling?: number): Promise<Record<string, unknown>> {
  settle();
  const sut = await start('relay');
  try {
    const target = sink.count() + expected;
    const cpu0 = cpuSeconds(sut.pids());
    const each0 = cpuByProcess(sut);
    const machine0 = machineCpuSeconds();
    const t0 = process.hrtime.bigint();
    const load = await drive('127.0.0.1', sut.port, shape, v);
    await sink.waitFor(target, 900_000);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const rate = shape.messages / seconds;
    const cpu = cpuSeconds(sut.pids()) - cpu0;
    return {
      scenario: 'relay', system: sut.name, sink: sink.name, ...variantFields(v), ...shape,
      msgs_per_s: round(rate),
      ...(ceiling ? { of_ceiling: round(rate / ceiling, 3) } : {}),
      ...latencyFields(load.latencies, load.connectLatencies, v.connection),
      cpu_s_per_1000: round((cpu / shape.messages) * 1000, 2),
      machine_cpu_s_per_1000: round(((machineCpuSeconds() - machine0) / shape.messages) * 1000, 2),
      ...memory(sut),
      ...(sut.processes ? cpuFields(sut, each0, cpu, shape.messages) : {}),
    };
  } finally {
    await sut.stop();
  }
}
