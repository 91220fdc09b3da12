import { createRequire } from 'node:module';

/**
 * The one place that reaches into mailauth's internals (test/unit/dkim/mailauth-canary
 * checks that they are still there and sign exactly as mailauth's dkimSign() does).
 * mailauth's signer is a Writable that takes the whole message and signs at its end;
 * Tern signs in a worker thread, from the bytes as they stream to the spool, with over-
 * signing (which mailauth's signer does not do), so it takes mailauth's parts for what is
 * DKIM-specific (body canonicalization and hash, header selection and canonicalization,
 * the DKIM-Signature field's layout) and does only the private-key operation itself, as
 * mailauth's DkimSigner.finalize() does it.
 */
const require = createRequire(import.meta.url);

/** mailauth's parsed header field: lower-case name, name as written, the field's bytes (folded, no final CRLF). */
export interface HeaderField {
  readonly key: string | null;
  readonly casedKey?: string;
  readonly line: Buffer;
}

interface BodyHash {
  update(chunk: Buffer | null, final?: boolean): void;
  digest(encoding: 'base64'): string;
}

interface SigningLines {
  keys: string;
  headers: HeaderField[];
}

interface DkimHeaderOpts {
  [tag: string]: string | number | undefined;
}

const tools = require('mailauth/lib/tools') as {
  parseHeaders(buf: Buffer): { parsed: HeaderField[] };
  getSigningHeaderLines(parsed: HeaderField[], fieldNames: string): SigningLines;
  formatSignatureHeaderLine(type: 'DKIM', values: DkimHeaderOpts, folded: boolean): string;
  parseDkimHeaders(line: string): { parsed?: Record<string, { value?: unknown }> };
};
// The From: addresses are read the way mailauth's verifier reads them (with nodemailer's parser).
const addressparser = require('nodemailer/lib/addressparser') as (value: string) => { address?: string; group?: { address?: string }[] }[];
const body = require('mailauth/lib/dkim/body') as {
  dkimBody(canonicalization: string, hashAlgo: string, maxBodyLength: false): BodyHash;
};
const header = require('mailauth/lib/dkim/header') as {
  generateCanonicalizedHeader(
    type: 'DKIM',
    lines: SigningLines,
    options: { signingDomain: string; selector: string; algorithm: string; canonicalization: string; bodyHash: string; signTime: Date },
  ): { canonicalizedHeader: Buffer; dkimHeaderOpts: DkimHeaderOpts };
};

export type BodyCanonicalization = 'relaxed' | 'simple';

/** A body hash in progress (RFC 6376 §3.4.3/§3.4.4 canonicalization, then SHA-256). */
export interface BodyHasher {
  update(chunk: Buffer): void;
  /** The bh= value; call once. */
  digest(): string;
}

export function bodyHasher(canonicalization: BodyCanonicalization): BodyHasher {
  const hash = body.dkimBody(canonicalization, 'sha256', false);
  return {
    update: (chunk) => hash.update(chunk),
    digest: () => hash.digest('base64'),
  };
}

/** The fields of a header section (the bytes before the empty line), unfolded into one entry each. */
export function parseHeaderFields(section: Buffer): HeaderField[] {
  return tools.parseHeaders(section).parsed;
}

/** The address of the first From: field with one (RFC 5322 §3.6.2), as mailauth's verifier finds it. */
export function fromAddress(fields: readonly HeaderField[]): string | undefined {
  for (const field of fields) {
    if (field.key !== 'from') continue;
    const value = field.line.toString('utf8');
    const colon = value.indexOf(':');
    for (const addr of addressparser(value.slice(colon + 1).trim())) {
      const address = addr.address ?? addr.group?.find((g) => g.address)?.address;
      if (address) return address;
    }
  }
  return undefined;
}

/** d= and s= of a DKIM-Signature field, lower case; undefined when it does not parse. */
export function signatureIdentity(field: HeaderField): { domain: string; selector: string } | undefined {
  try {
    const parsed = tools.parseDkimHeaders(field.line.toString('binary')).parsed;
    const d = parsed?.d?.value;
    const s = parsed?.s?.value;
    if (typeof d !== 'string' || typeof s !== 'string') return undefined;
    return { domain: d.toLowerCase(), selector: s.toLowerCase() };
  } catch {
    return undefined;
  }
}

export interface SignatureRequest {
  readonly fields: readonly HeaderField[];
  readonly headers: readonly string[];
  readonly oversign: readonly string[];
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: 'rsa-sha256' | 'ed25519-sha256';
  readonly canonicalization: string;
  /** bh= for the request's body canonicalization. */
  readonly bodyHash: string;
  /** t=; the same value goes into what is signed and into the field. */
  readonly signTime: Date;
}

/**
 * What the private key must sign for one signature, and how to write the field once it
 * has: RSA signs the canonicalized header with SHA-256 (RFC 6376 §3.3.1); Ed25519 signs
 * its SHA-256 digest (RFC 8463 §3), which is what mailauth hands crypto.sign().
 */
export function prepareSignature(req: SignatureRequest): { data: Buffer; digestFirst: boolean; field: (b: string) => string } {
  const lines = tools.getSigningHeaderLines(req.fields as HeaderField[], req.headers.join(':'));
  // Over-signing (RFC 6376 §8.15): one more h= entry per name than the message has such
  // fields. A name in h= without a field to match adds nothing to what is hashed
  // (§5.4.2), so no such field can be added in transit without breaking the signature.
  const extra = req.oversign.map((name) => lines.headers.find((f) => f.key === name)?.casedKey ?? name);
  const signing: SigningLines = { headers: lines.headers, keys: [lines.keys, ...extra].filter(Boolean).join(': ') };
  const { canonicalizedHeader, dkimHeaderOpts } = header.generateCanonicalizedHeader('DKIM', signing, {
    signingDomain: req.domain,
    selector: req.selector,
    algorithm: req.algorithm,
    canonicalization: req.canonicalization,
    bodyHash: req.bodyHash,
    signTime: req.signTime,
  });
  return {
    data: canonicalizedHeader,
    digestFirst: req.algorithm === 'ed25519-sha256',
    field: (b) => tools.formatSignatureHeaderLine('DKIM', { ...dkimHeaderOpts, b }, true),
  };
}
