"""Reads a delivery status notification with Python's standard `email` package, once per
policy (compat32 and default), and prints what each finds as JSON: the report's parts,
the status part's type, transfer encoding and parameters, and its field blocks with the
field values unfolded (RFC 5322 section 2.2.3). Usage: python3 dsn-email.py REPORT.eml"""
import email
import email.parser
import email.policy
import json
import sys


def text(value):
    """A field value as a str, unfolded; UTF-8 kept (the parser carries 8-bit bytes as surrogates)."""
    value = str(value)
    try:
        value = value.encode('utf-8', 'surrogateescape').decode('utf-8')
    except UnicodeError:
        pass
    return value.replace('\r\n', '').replace('\n', '')


def fields(message):
    return [[name.lower(), text(value)] for name, value in message.items()]


def read(raw, policy):
    msg = email.message_from_bytes(raw, policy=policy)
    found = {'defects': [str(d) for d in msg.defects], 'parts': [], 'status': None}
    for part in msg.walk():
        ctype = part.get_content_type()
        found['parts'].append(ctype)
        if ctype not in ('message/delivery-status', 'message/global-delivery-status') or found['status']:
            continue
        if ctype == 'message/delivery-status':
            # The package reads this type itself: one message per block of fields.
            blocks = part.get_payload()
        else:
            # RFC 6533's type is read as one message: the per-message fields its header,
            # the per-recipient blocks its body; the same parser reads those blocks.
            inner = part.get_payload()[0]
            body = inner.get_payload(decode=True).decode('utf-8')
            parser = email.parser.HeaderParser(policy=policy)
            blocks = [inner] + [parser.parsestr(b.strip('\n') + '\n') for b in body.replace('\r\n', '\n').split('\n\n') if b.strip()]
        found['status'] = {
            'type': ctype,
            'cte': part.get('Content-Transfer-Encoding'),
            'params': [k.lower() for k, _ in part.get_params()[1:]] if part.get_params() else [],
            'blocks': [fields(b) for b in blocks],
            'defects': [str(d) for d in part.defects],
        }
    return found


raw = open(sys.argv[1], 'rb').read()
print(json.dumps({'compat32': read(raw, email.policy.compat32), 'default': read(raw, email.policy.default)}))
