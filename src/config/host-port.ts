/**
 * `host:port`, with `[v6]:port` for IPv6: the one reading of an address with a port in
 * config (listen values, DNS servers). Undefined when `spec` is not of that form.
 */
export function parseHostPort(spec: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:\s]+)):(\d{1,5})$/i.exec(spec.trim());
  return m ? { host: m[1] ?? m[2], port: Number(m[3]) } : undefined;
}

/**
 * Splits a validated `host:port` listen value (`[v6]:port` for IPv6) into its parts; the
 * schemas check the syntax with parseHostPort.
 */
export function splitHostPort(spec: string): { host: string; port: number } {
  const parsed = parseHostPort(spec);
  if (!parsed) throw new Error(`not a host:port value: ${spec}`);
  return parsed;
}
