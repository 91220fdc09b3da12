export { loadConfig, checkConfig, CONFIG_FILES } from './load.js';
export { configChanges } from './changes.js';
export type { FileChange, KeyChange } from './changes.js';
export { splitHostPort } from './host-port.js';
export type { TernConfig, AuthUser, DnsServer } from './load.js';
export type { OutboundConfig, SmtpMain, TlsConfig, TlsSection, DnsMain, DsnMain, HttpMain, LogMain, Route } from './schemas.js';
export { parseDuration, parseTempFailIntervals } from './durations.js';
export { parseRewriteRules, REWRITE_FILE } from './rewrite-rules.js';
export type { RewriteRule, RewriteRules } from './rewrite-rules.js';
