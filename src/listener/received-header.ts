import { rfc5322Date } from '../smtp/index.js';

export interface ReceivedInfo {
  readonly helo: string;
  readonly clientAddress: string;
  /** The forward-confirmed name of the client, when known (never an unverified PTR name). */
  readonly clientName?: string;
  readonly me: string;
  readonly text: string;
  readonly messageId: string;
  readonly tls: boolean;
  readonly authenticated: boolean;
  /** The transaction used SMTPUTF8 (RFC 6531): the protocol is UTF8SMTP and its kin. */
  readonly smtpUtf8?: boolean;
  readonly date: Date;
}

/**
 * The `with` protocol name: ESMTP, ESMTPS, ESMTPA, ESMTPSA (RFC 3848), and for an SMTPUTF8
 * transaction UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA (RFC 6531 §3.7.3), with S for
 * STARTTLS and A for an authenticated client.
 */
function receivedProtocol(info: Pick<ReceivedInfo, 'tls' | 'authenticated' | 'smtpUtf8'>): string {
  return `${info.smtpUtf8 ? 'UTF8SMTP' : 'ESMTP'}${info.tls ? 'S' : ''}${info.authenticated ? 'A' : ''}`;
}

/** RFC 5321 §4.4 trace header. */
export function receivedHeader(info: ReceivedInfo): string {
  const protocol = receivedProtocol(info);
  const helo = info.helo.replace(/[^\x21-\x7e]/g, '?') || 'unknown';
  return (
    `Received: from ${helo} (${info.clientName ? info.clientName + ' ' : ''}[${info.clientAddress}])\r\n` +
    `\tby ${info.me} (${info.text}) with ${protocol} id ${info.messageId};\r\n` +
    `\t${rfc5322Date(info.date)}\r\n`
  );
}
