import { parse as parseIni } from 'ini';
import { ConfigError } from '../core/index.js';

/**
 * The sections of an ini file whose section names are domains. The `ini` package nests
 * `[example.com]` as example → com (dots are its path separator); the names are put back
 * together here. Settings outside any section are an error naming `where` they belong.
 */
export function domainSections(file: string, raw: string, where: string): [string, Record<string, unknown>][] {
  const found: [string, Record<string, unknown>][] = [];
  const collect = (prefix: string, obj: Record<string, unknown>) => {
    const own: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) collect(prefix ? `${prefix}.${k}` : k, v as Record<string, unknown>);
      else own[k] = v;
    }
    if (Object.keys(own).length === 0) return;
    if (!prefix) throw new ConfigError(file, Object.keys(own)[0], Object.values(own)[0], `settings must sit under ${where}`);
    found.push([prefix, own]);
  };
  collect('', parseIni(raw) as Record<string, unknown>);
  return found;
}
