#!/usr/bin/env python3
"""Writes the hand-made seed corpora of Tests/Fuzz (CSV, normalizers, element decoder).

The message and agreement seeds come from the harnesses themselves:
`.build/debug/FuzzMessage --write-seeds Tests/Fuzz/FuzzMessage/seeds` and the same for FuzzAgreement.
Run from the repository root: python3 Tests/Fuzz/make_seeds.py
"""
import json
import os

vectors = json.load(open('Protocol/vectors/rfc-ristretto255-h2g-oprf.json'))
G = [v['encoding'] for v in vectors['ristretto255_generator_multiples']['vectors']]  # RFC 9496 A.1, G[0] = identity
I = [v['encoding'] for v in vectors['ristretto255_invalid_encodings']['vectors']]     # RFC 9496 A.2


def w(harness, name, data):
    os.makedirs(f'Tests/Fuzz/{harness}/seeds', exist_ok=True)
    with open(f'Tests/Fuzz/{harness}/seeds/{name}', 'wb') as f:
        f.write(data)


# Element decoder: valid multiples, the identity, invalid encodings, and batches.
w('FuzzElement', 'identity-B0', bytes.fromhex(G[0]))
for i in (1, 2, 5, 15):
    w('FuzzElement', f'rfc9496-a1-B{i}', bytes.fromhex(G[i]))
for i in (0, 7, 14, len(I) - 1):
    w('FuzzElement', f'rfc9496-a2-invalid-{i}', bytes.fromhex(I[i]))
w('FuzzElement', 'batch-B1-B2-B3', bytes.fromhex(G[1] + G[2] + G[3]))
w('FuzzElement', 'batch-B1-invalid-B2', bytes.fromhex(G[1] + I[3] + G[2]))
w('FuzzElement', 'batch-duplicate-B4', bytes.fromhex(G[4] + G[4]))
w('FuzzElement', 'batch-33-bytes', bytes.fromhex(G[1]) + b'\x00')

# CSV: the edge cases of issue 7's bad-input list.
csv = {
    'bom-crlf.csv': b'\xef\xbb\xbfemail,phone\r\nann@example.com,+14155550101\r\nbob@example.com,\r\n',
    'quoted-commas-newlines.csv': b'id,note\n1,"a, b"\n2,"line\nbreak with ""quotes"""\n',
    'missing-column.csv': b'email,phone\nann@example.com\n',
    'extra-column.csv': b'email,phone\nann@example.com,1,2\n',
    'empty.csv': b'',
    'header-only.csv': b'email,phone\n',
    'non-utf8-field.csv': b'email\n\xff\xfeann@example.com\n',
    'non-utf8-header.csv': b'em\xffail\nx\n',
    'duplicate-rows.csv': b'email\nann@example.com\nann@example.com\n',
    'blank-lines.csv': b'email\n\nann@example.com\n\n\n',
    'no-final-newline.csv': b'a,b\n1,2',
    'stray-quote.csv': b'a,b\n1,x"y\n',
    'unterminated-quote.csv': b'a,b\n1,"open\n',
    'bare-cr.csv': b'a,b\r1,2\r',
    'duplicate-header.csv': b'email,Email\n1,2\n',
    'long-line.csv': b'a\n' + b'x' * 600 + b'\n',  # above the harness's 512-byte record limit
}
for name, data in csv.items():
    w('FuzzCSV', name, data)

# Normalizers: the first byte selects the rules (bit 0: Gmail rule; bits 1-2: no default
# country calling code, 1, 44, 971), the rest is the raw value.
h64 = b'55' + b'a' * 62
normalizers = {
    'FuzzEmail': {
        'plain': b'\x00ann.smith@example.com', 'mixed-case-plus-tag': b'\x00 Ann.Smith+promo@Example.COM ',
        'gmail-rule': b'\x01john.smith+x@googlemail.com', 'prehashed': b'\x00' + h64,
        'idn': '\x00bob@bücher.example'.encode(), 'punycode': b'\x00bob@xn--bcher-kva.example',
        'no-at': b'\x00not-an-email', 'two-at': b'\x00a@b@example.com', 'quoted-local': b'\x00"a b"@example.com',
        'zero-width': '\x00ann\u200b@example.com'.encode(),
    },
    'FuzzPhone': {
        'e164': b'\x00+14155550101', 'nanp-local': b'\x02(415) 555-0101', 'uk-local': b'\x04020 7946 0958',
        'uae-local': b'\x06050 123 4567', 'prehashed': b'\x00' + h64, 'letters': b'\x02+1 (800) FLOWERS',
        'too-long': b'\x00+' + b'1' * 32, 'extension': b'\x02415-555-0101 ext 12',
        'fullwidth': '\x00＋１４１５５５５０１０１'.encode(),
    },
    'FuzzMAID': {
        'idfa-upper': b'\x006D92078A-8246-4BA4-AE5B-76104861E7DC', 'gaid-lower': b'\x0038400000-8cf0-11bd-b23e-10b96e40000d',
        'no-hyphens': b'\x006d92078a82464ba4ae5b76104861e7dc', 'all-zero': b'\x0000000000-0000-0000-0000-000000000000',
        'wrong-hyphens': b'\x006d92078a-82464ba4-ae5b-76104861e7dc', 'braces': b'\x00{6d92078a-8246-4ba4-ae5b-76104861e7dc}',
    },
    'FuzzCustom': {
        'ascii': b'\x00Loyalty-000123', 'spaces': b'\x00  member 42  ', 'nfc': '\x00café'.encode(),
        'nfd': '\x00cafe\u0301'.encode(), 'bom': '\x00\ufeffid-1'.encode(), 'hangul': '\x00한국어'.encode(),
        'invalid-utf8': b'\x00\xc3\x28', 'empty': b'\x00', 'long': b'\x00' + b'k' * 1100,
    },
}
for harness, seeds in normalizers.items():
    for name, data in seeds.items():
        w(harness, name, data)
