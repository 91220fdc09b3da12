#!/usr/bin/python3
"""Verifies every DKIM-Signature of a message with dkimpy (Debian's python3-dkim), an
implementation independent of Tern's, the public keys looked up over DNS at the test
DNS server. Usage: dkim-verify.py <dns host> <dns port> < message
Prints a JSON list, one object per signature, top first: d, s, a, ok, error."""
import json
import re
import sys

import dkim
import dns.resolver


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.timeout = resolver.lifetime = 5

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode('ascii')
        try:
            answer = resolver.resolve(name, 'TXT', tcp=False)
        except Exception:
            return None
        # One TXT record may be several strings of up to 255 bytes (RFC 6376 §3.6.2.2): joined.
        return b''.join(answer[0].strings)

    message = sys.stdin.buffer.read()
    d = dkim.DKIM(message)
    results = []
    sigs = [v for (k, v) in d.headers if k.lower() == b'dkim-signature']
    for idx, value in enumerate(sigs):
        tags = dict(
            (m.group(1).decode(), re.sub(rb'\s+', b'', m.group(2)).decode())
            for m in re.finditer(rb'(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)', value)
        )
        ok, error = False, None
        try:
            ok = bool(d.verify(idx=idx, dnsfunc=dnsfunc))
        except Exception as e:  # dkimpy raises for malformed signatures and bad keys
            error = '%s: %s' % (type(e).__name__, e)
        if not ok and error is None:
            error = 'signature did not verify'
        results.append({'d': tags.get('d'), 's': tags.get('s'), 'a': tags.get('a'), 'c': tags.get('c'), 'h': tags.get('h'), 'ok': ok, 'error': error})
    json.dump(results, sys.stdout)


main()
