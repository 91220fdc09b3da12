import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_FILES } from './load.js';

/**
 * A file of the config directory that Tern does not read (or a line it will not read the
 * way Haraka would) but that an operator coming from Haraka may expect to work. Tern's
 * config/ borrows Haraka's layout, which invites copying a Haraka config/ over it; its
 * settings would then be silently ignored.
 */
export interface ConfigWarning {
  readonly file: string;
  readonly problem: string;
  /** Tern's setting for the same purpose, when there is one. */
  readonly equivalent?: string;
}

/** Haraka's config files, with Tern's equivalent (null: Tern has none). */
const HARAKA_FILES: Readonly<Record<string, string | null>> = {
  databytes: 'smtp.ini max_message_size',
  max_unrecognized_commands: 'smtp.ini hard_error_limit',
  smtpgreeting: 'smtp.ini banner',
  loglevel: 'log.ini level',
  'log.syslog.ini': null,
  host_list: null,
  host_list_regex: null,
  'connection.ini': 'smtp.ini (max_line_length, socket_timeout, banner)',
  'relay.ini': 'relay_acl_allow',
  'relay_dest_domains.ini': 'routes.ini',
  'smtp_forward.ini': 'routes.ini [*] host=',
  'smtp_proxy.ini': 'routes.ini [*] host=',
  'lmtp.ini': 'routes.ini lmtp=true',
  'auth_flat_file.ini': 'auth_users',
  'early_talker.ini': 'smtp.ini early_talker_delay',
  'limit.ini': 'smtp.ini max_connections_per_client',
  'plugin_timeout': null,
  internalcmd_key: null,
  haproxy_hosts: null,
  'outbound.bounce_message_html': 'outbound.bounce_message',
  'dkim_sign.ini': null,
  'spf.ini': null,
  'dnsbl.ini': null,
  'dnsbl.zones': null,
  'karma.ini': null,
  'helo.checks.ini': null,
  'data.headers.ini': null,
  'mail_from.is_resolvable.ini': null,
  'rcpt_to.in_host_list': null,
  'access.domains': null,
  'toobusy.ini': null,
  'tarpit.ini': null,
  'greylist.ini': null,
  'redis.ini': null,
  'watch.ini': null,
  xclient_hosts: null,
  'bounce.ini': null,
  aliases: null,
};

/** Haraka plugins an operator may list in config/plugins, with Tern's equivalent. */
const HARAKA_PLUGINS: Readonly<Record<string, string | null>> = {
  tls: 'tls_key.pem and tls_cert.pem',
  relay: 'relay_acl_allow',
  'auth/flat_file': 'auth_users',
  'auth/auth_proxy': null,
  'queue/smtp_forward': 'routes.ini [*] host=',
  'queue/smtp_proxy': 'routes.ini [*] host=',
  'queue/lmtp': 'routes.ini lmtp=true',
  'queue/discard': null,
  max_unrecognized_commands: 'smtp.ini hard_error_limit',
  limit: 'smtp.ini max_connections_per_client',
  early_talker: 'smtp.ini early_talker_delay',
  'rcpt_to.in_host_list': null,
  'mail_from.is_resolvable': null,
  'helo.checks': null,
  'data.headers': null,
  dnsbl: null,
  dkim: null,
  dkim_sign: null,
  spf: null,
  karma: null,
  access: null,
  toobusy: null,
  syslog: null,
  bounce: null,
  process_title: null,
  xclient: null,
  headers: null,
};

/** Haraka reads `<name>.yaml`/`.json` in place of `<name>.ini`. */
const ALTERNATE_FORMAT = /^(.+)\.(ya?ml|json)$/;

const with_ = (file: string, problem: string, equivalent: string | null | undefined): ConfigWarning =>
  equivalent ? { file, problem, equivalent } : { file, problem };

/** Every file of `dir` that Tern ignores but Haraka would read, and Haraka plugin names in `plugins`. */
export function foreignFiles(dir: string): ConfigWarning[] {
  if (!existsSync(dir)) return [];
  const read = new Set<string>([...CONFIG_FILES, 'plugins']);
  const warnings: ConfigWarning[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (read.has(name) || !statSync(join(dir, name)).isFile()) continue;
    const alternate = ALTERNATE_FORMAT.exec(name);
    if (name in HARAKA_FILES) {
      warnings.push(with_(name, "Haraka's file; Tern does not read it", HARAKA_FILES[name]));
    } else if (alternate && read.has(`${alternate[1]}.ini`)) {
      warnings.push(with_(name, `Haraka's ${alternate[2]} form of ${alternate[1]}.ini; Tern reads only the .ini`, `${alternate[1]}.ini`));
    } else if (/\.(ini|ya?ml)$/.test(name)) {
      warnings.push({ file: name, problem: 'Tern does not read this file' });
    }
  }
  const plugins = join(dir, 'plugins');
  if (existsSync(plugins)) {
    for (const [i, raw] of readFileSync(plugins, 'utf8').split(/\r?\n/).entries()) {
      const line = raw.replace(/#.*$/, '').trim();
      if (line in HARAKA_PLUGINS) {
        warnings.push(with_('plugins', `line ${i + 1}: "${line}" is a Haraka plugin; Tern's plugins file lists Tern modules (README, Plugins)`, HARAKA_PLUGINS[line]));
      }
    }
  }
  return warnings;
}

/** One line for the operator: `databytes: Haraka's file; Tern does not read it (Tern: smtp.ini max_message_size)`. */
export function warningText(w: ConfigWarning): string {
  return `${w.file}: ${w.problem}${w.equivalent ? ` (Tern: ${w.equivalent})` : ''}`;
}
