import { z } from 'zod';
import { parseHostPort } from './host-port.js';
import { bool, bytes, int, intervals, optionalInt, wholeNumber, QUEUE_MAX_SECONDS, seconds, text, TIMER_MAX_SECONDS } from './fields.js';

// Ranges: durations that arm a timer run from the shortest that makes sense to
// TIMER_MAX_SECONDS (Node's timer limit); those that only date something (a retry, an
// expiry, a memory) to QUEUE_MAX_SECONDS. Counts get a floor that keeps Tern working and a
// ceiling far above any real need that still bounds what a typo can do.
const TIMER = TIMER_MAX_SECONDS;
const QUEUE = QUEUE_MAX_SECONDS;
/** Sizes: past 1 GiB a message is no longer mail (the largest providers stop at 150 MB). */
const MAX_BYTES = 1024 ** 3;
const MANY = 100_000;
const PORT = 65535;
/** Workers: more than a machine has cores only adds switching; 256 bounds a typo. */
export const MAX_NODES = 256;

/** How delivery uses TLS: outbound.ini `tls_mode` and a route's `tls` (README, Routes and TLS policy). */
export const tlsModeSchema = z.enum(['opportunistic', 'required', 'verify', 'disabled']);
export type TlsMode = z.infer<typeof tlsModeSchema>;

/** config/smtp.ini `[main]`: the listener. */
export const smtpMainSchema = z
  .object({
    listen: z
      .string()
      .default('127.0.0.1:2525')
      .refine((v) => v.split(',').every((hp) => parseHostPort(hp) !== undefined), {
        message: 'expected a comma separated list of host:port ([v6]:port for IPv6)',
      }),
    max_message_size: bytes(25 * 1024 * 1024, 1024, MAX_BYTES),
    // RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted; fewer is for special setups.
    max_recipients: int(1000, 1, MANY),
    // Postfix's hopcount_limit: a message that has crossed this many hops is looping.
    max_received_headers: int(50, 1, 1000),
    // RFC 5321 §4.5.3.1.4-6: command lines of 512 octets, text lines of 1000; 64 KiB bounds what a peer may send.
    max_line_length: int(4096, 512, 65536),
    // AUTH is only offered after STARTTLS unless an operator says otherwise (no passwords in clear).
    auth_insecure: bool(false),
    banner: text('Tern ESMTP'),
    max_clients: int(1000, 1, MANY),
    socket_timeout: seconds(300, 1, TIMER),
    // Issue #11: the greeting goes out at once unless an operator wants Haraka's early_talker pause.
    early_talker_delay: seconds(0, 0, 60),
    // Per client address, as Postfix's anvil counts them (0: no limit); relay_acl_allow
    // clients (application servers opening many connections) have their own.
    max_connections_per_client: int(20, 0, 100_000),
    max_connection_rate_per_client: int(60, 0, 1_000_000),
    relay_max_connections_per_client: int(0, 0, 100_000),
    relay_max_connection_rate_per_client: int(0, 0, 1_000_000),
    // Postfix smtpd_per_record_deadline: a line must arrive whole this long after its first byte.
    line_deadline: seconds(30, 1, 3600),
    max_session_length: seconds('1h', 1, 86_400),
    // Postfix's smtpd_soft_error_limit, smtpd_hard_error_limit and smtpd_error_sleep_time,
    // counted per connection over the refusals Tern decides (AUTH, MAIL, RCPT) and reset
    // when a message is accepted: past the soft limit every refusal waits error_sleep_time,
    // past the hard limit the next command gets 421 4.7.0 and the connection is closed.
    error_sleep_time: seconds(1, 0, 60),
    soft_error_limit: int(10, 1, 1000),
    hard_error_limit: int(20, 1, 1000),
    // AUTH brute force: every failure waits auth_failure_delay (Dovecot's auth_failure_delay);
    // a connection gets auth_failure_limit failures, then 421 4.7.0. An address (an IPv6 /64)
    // with auth_client_failure_limit failures within auth_client_failure_window is refused
    // AUTH (454 4.7.0) for auth_client_lockout.
    auth_failure_delay: seconds(2, 0, 60),
    auth_failure_limit: int(3, 1, 100),
    auth_client_failure_limit: int(10, 1, 10000),
    auth_client_failure_window: seconds('10m', 1, 86400),
    auth_client_lockout: seconds('10m', 1, 86400),
    // Issue #16: worker processes (node:cluster), each with a queue shard of its own; 1 is
    // the single process of old, `cpus` one worker per core (os.availableParallelism()).
    nodes: z
      .union([z.literal('cpus'), wholeNumber(1, MAX_NODES)])
      .default(1),
  })
  .strict();

/** config/outbound.ini: Haraka's keys with Haraka's meanings, plus Tern's own. */
export const outboundSchema = z
  .object({
    disabled: bool(false),
    concurrency_max: int(10000, 1, MANY),
    enable_tls: bool(true),
    // Without temp_fail_intervals the n-th retry waits 2^(n+5) s: past 30 that is centuries.
    maxTempFailures: int(13, 0, 30),
    temp_fail_intervals: intervals(1, QUEUE),
    always_split: bool(false),
    received_header: text('Tern outbound'),
    connect_timeout: seconds(30, 1, TIMER),
    local_mx_ok: bool(false),
    inet_prefer: z.enum(['default', 'v4', 'v6']).default('default'),
    max_queue_lifetime: seconds('5d', 1, QUEUE),
    // RFC 5321 §4.5.3.2 timeouts, one per phase of the client session.
    greeting_timeout: seconds('5m', 1, TIMER),
    mail_timeout: seconds('5m', 1, TIMER),
    rcpt_timeout: seconds('5m', 1, TIMER),
    data_init_timeout: seconds('2m', 1, TIMER),
    data_block_timeout: seconds('3m', 1, TIMER),
    data_done_timeout: seconds('10m', 1, TIMER),
    // How long SIGTERM waits for deliveries in flight before leaving them to the next start.
    // 0: leave deliveries in flight to the next start at once.
    shutdown_timeout: seconds(30, 0, TIMER),
    // TLS policy for destinations without a route of their own (routes.ini `tls`):
    // opportunistic | required | verify | disabled. enable_tls=false means disabled and
    // Haraka's force_tls=true means required.
    tls_mode: tlsModeSchema.default('opportunistic'),
    force_tls: bool(false),
    // Connection reuse: a session that delivered stays open for the next entry to the same host.
    max_deliveries_per_connection: int(100, 1, MANY),
    // 0: no reuse, a session closes once its delivery is done.
    idle_timeout: seconds(5, 0, TIMER),
    // Attempts in flight to one destination domain at most (routes.ini max_connections per domain).
    max_domain_connections: int(20, 1, MANY),
    // A destination whose every host refuses a session is left alone for this long, doubling up to the max.
    destination_backoff_min: seconds('1m', 1, TIMER),
    destination_backoff_max: seconds('1h', 1, TIMER),
    // RFC 8461: honour the MTA-STS policies that destination domains publish.
    mta_sts: bool(true),
    // After an opportunistic TLS handshake fails, the host is tried in plaintext and remembered this long.
    no_tls_memory: seconds('1h', 0, QUEUE),
    // config/rewrite_delivery_status.json is re-read when it changes, checked at least this often.
    rewrite_ttl: seconds('5m', 1, TIMER),
    // Port for MX delivery; only tests and unusual setups change it.
    remote_port: int(25, 1, PORT),
    // Port MTA-STS policies are fetched from (RFC 8461 §3.3 says HTTPS, i.e. 443); only tests
    // change it, so that a policy server needs no privileged port.
    mta_sts_port: int(443, 1, PORT),
  })
  .strict()
  .refine((o) => o.destination_backoff_min <= o.destination_backoff_max, {
    message: 'must not exceed destination_backoff_max',
    path: ['destination_backoff_min'],
  });

const tlsSection = z
  .object({
    ciphers: z.string().optional(),
    // PEM file of extra trust anchors (relative to config/) for tls=verify, e.g. a private CA.
    ca: z.string().optional(),
    minVersion: z.enum(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']).optional(),
    rejectUnauthorized: bool(false),
    requestCert: bool(false),
  })
  .strict();

/** config/tls.ini: `[main]` for the listener, `[outbound]` for delivery. */
export const tlsSchema = z.object({ main: tlsSection.default({}), outbound: tlsSection.default({}) }).strict();

/** config/dns.ini `[main]`. */
export const dnsMainSchema = z
  .object({
    servers: z.string().optional(),
    // Per query and server; fractions for a resolver next door.
    timeout: seconds(5, 0.1, TIMER),
    cache_max_entries: int(10000, 0, 10_000_000),
    // Randomise the case of query names and refuse replies that do not echo it (0x20).
    // Off by default: a forwarder that does not copy the question as sent would make
    // every lookup fail and all mail wait, as with Unbound's use-caps-for-id (default no).
    use_0x20: bool(false),
  })
  .strict();

/** config/dsn.ini `[main]`: KumoMTA's generate_rfc3464_message parameters, with its defaults. */
export const dsnMainSchema = z
  .object({
    enable_bounce: bool(false),
    enable_expiration: bool(false),
    include_original_message: z.enum(['FullContent', 'HeadersOnly', 'No']).default('FullContent'),
    // `<mta-type>; <name>` (RFC 3464 §2.2.2); empty means `dns; <config/me>`.
    reporting_mta: z
      .string()
      .regex(/^[A-Za-z0-9-]+;\s*\S+$/, 'expected "dns; mta1.example.com"')
      .optional(),
    stable_content: bool(false),
    // RFC 3461 NOTIFY=DELAY: one "delayed" report once a recipient has waited this long; 0 = never.
    delay_warning_time: seconds(0, 0, QUEUE),
    // Postfix's bounce_size_limit: a larger original is returned as headers only.
    bounce_size_limit: bytes(50000, 0, MAX_BYTES),
  })
  .strict();

export type DsnMain = z.infer<typeof dsnMainSchema>;

/** config/http.ini `[main]`: the admin API and metrics. */
export const httpMainSchema = z
  .object({
    disabled: bool(false),
    listen: z
      .string()
      .default('127.0.0.1:8025')
      .refine((v) => parseHostPort(v) !== undefined, { message: 'expected host:port ([v6]:port for IPv6)' }),
    // Bearer token for the API; required when listening beyond loopback.
    token: z.string().min(16, 'use a token of at least 16 characters').optional(),
  })
  .strict();

export type HttpMain = z.infer<typeof httpMainSchema>;

/** config/log.ini `[main]`, as Haraka's log.ini (Haraka's level names are accepted and mapped). */
export const logMainSchema = z
  .object({
    level: z
      .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'data', 'protocol', 'notice', 'crit', 'alert', 'emerg'])
      .default('info'),
    // `default` is Haraka's name for its human format: pretty output.
    format: z.enum(['json', 'logfmt', 'default']).default('json'),
    // pretty, colourised output when stdout is a terminal (format=json only).
    pretty_on_tty: bool(true),
  })
  .strict();

export type LogMain = z.infer<typeof logMainSchema>;
/** One section of config/routes.ini: a destination domain (or `*`) and its next hop and policy. */
export const routeSchema = z
  .object({
    // Comma separated names or IPs, tried in order; absent: MX lookup as usual, with this section's policy.
    host: z.string().optional(),
    port: int(25, 1, PORT),
    auth_user: z.string().optional(),
    auth_pass: z.string().optional(),
    // Allow AUTH without TLS to this next hop (a smart host on a trusted network only).
    auth_insecure: bool(false),
    bind: z.string().ip().optional(),
    bind_helo: z.string().optional(),
    tls: tlsModeSchema.optional(),
    // Transactions per reused session to this domain (outbound.ini max_deliveries_per_connection otherwise).
    max_deliveries_per_connection: optionalInt(1, MANY),
    // Deliver with LMTP (RFC 2033) to this next hop, e.g. a mailbox server's LMTP port.
    lmtp: bool(false),
    max_connections: optionalInt(1, MANY),
  })
  .strict();

export type Route = z.infer<typeof routeSchema>;
export type SmtpMain = z.infer<typeof smtpMainSchema>;
export type OutboundConfig = z.infer<typeof outboundSchema>;
export type TlsConfig = z.infer<typeof tlsSchema>;
export type TlsSection = z.infer<typeof tlsSection>;
export type DnsMain = z.infer<typeof dnsMainSchema>;
