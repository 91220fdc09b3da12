/**
 * The service extensions a server announced in its EHLO (LHLO) reply, RFC 5321 §4.1.1.1:
 * the first line is its name and greeting, each further line a keyword and parameters.
 * Keywords are case-insensitive; they are kept upper-cased.
 */
export class Capabilities {
  private readonly map = new Map<string, readonly string[]>();

  constructor(lines: readonly string[] = []) {
    for (const line of lines.slice(1)) {
      const words = line.trim().split(/\s+/);
      const keyword = words[0]?.toUpperCase();
      // A keyword is alphanumeric with hyphens (RFC 5321 §4.1.1.1 ehlo-keyword); skip anything else.
      if (!keyword || !/^[A-Z0-9][A-Z0-9-]*$/.test(keyword) || this.map.has(keyword)) continue;
      this.map.set(keyword, words.slice(1));
    }
  }

  has(keyword: string): boolean {
    return this.map.has(keyword.toUpperCase());
  }

  params(keyword: string): readonly string[] {
    return this.map.get(keyword.toUpperCase()) ?? [];
  }

  /** The SIZE limit (RFC 1870 §4); undefined when none is announced or it is 0 (no fixed limit). */
  get sizeLimit(): number | undefined {
    const n = Number(this.params('SIZE')[0]);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  }

  /** The SASL mechanisms offered with AUTH, upper-cased. */
  get authMechanisms(): readonly string[] {
    return this.params('AUTH').map((m) => m.toUpperCase());
  }
}
