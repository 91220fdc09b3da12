import type { SMTPServer } from 'smtp-server';
import { changed } from '../config/index.js';
import type { FileChange, TernConfig } from '../config/index.js';

/**
 * The smtp-server options a reload may change. smtp-server reads each where it is used
 * (the greeting, EHLO, a new parser, a new socket, a STARTTLS upgrade), so new values
 * reach the next connection or command; a session in progress keeps what it was given.
 */
export function liveOptions(cfg: TernConfig) {
  return {
    name: cfg.me,
    banner: cfg.smtp.banner,
    size: cfg.smtp.max_message_size,
    maxRecipients: cfg.smtp.max_recipients,
    maxClients: cfg.smtp.max_clients,
    maxCommandLength: cfg.smtp.max_line_length,
    socketTimeout: cfg.smtp.socket_timeout * 1000,
    allowInsecureAuth: cfg.smtp.auth_insecure,
    hideSTARTTLS: !cfg.listenerTls,
  };
}

/** The listener's certificate and TLS settings (tls.ini [main]), as smtp-server takes them. */
export function tlsOptions(cfg: TernConfig) {
  const tls = cfg.listenerTls;
  return tls ? { key: tls.key, cert: tls.cert, minVersion: cfg.tls.main.minVersion, ciphers: cfg.tls.main.ciphers } : {};
}

/**
 * Applies a reload to a bound server. A renewed certificate is served from the next
 * STARTTLS on (RFC 3207 §4: the handshake starts after the command), with no connection
 * dropped; one that went hides STARTTLS from the next EHLO.
 */
export function reconfigureServer(server: SMTPServer, cfg: TernConfig, changes: readonly FileChange[]): void {
  Object.assign(server.options, liveOptions(cfg));
  const tlsChanged = changed(changes, 'tls_cert.pem') || changed(changes, 'tls_key.pem') || changed(changes, 'tls.ini', (k) => k.startsWith('main.'));
  if (tlsChanged && cfg.listenerTls) server.updateSecureContext(tlsOptions(cfg));
}
