/**
 * Splits a validated `host:port` listen value (`[v6]:port` for IPv6) into its parts; the
 * schemas check the syntax, this is the one place that reads it.
 */
export function splitHostPort(spec: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(spec.trim());
  if (!m) throw new Error(`not a host:port value: ${spec}`);
  return { host: m[1], port: Number(m[2]) };
}
