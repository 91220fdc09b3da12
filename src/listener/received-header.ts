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
  readonly date: Date;
}

/** RFC 5321 §4.4 trace header; the `with` keyword follows RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA). */
export function receivedHeader(info: ReceivedInfo): string {
  const protocol = `ESMTP${info.tls ? 'S' : ''}${info.authenticated ? 'A' : ''}`;
  const helo = info.helo.replace(/[^\x21-\x7e]/g, '?') || 'unknown';
  return (
    `Received: from ${helo} (${info.clientName ? info.clientName + ' ' : ''}[${info.clientAddress}])\r\n` +
    `\tby ${info.me} (${info.text}) with ${protocol} id ${info.messageId};\r\n` +
    `\t${rfc5322Date(info.date)}\r\n`
  );
}
