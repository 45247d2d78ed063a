#!/usr/bin/env python3
"""Writes normalization-v1.json: CleanRoom's own vectors for normalization rule set v1.

The expected normalized forms and error codes below are written by hand from
Protocol/NORMALIZATION.md. This script only adds what a person should not type:
SHA-256 digests (Python's hashlib, independent of the Swift code) and the
hash-to-group message bytes (layout of NORMALIZATION.md §8).

Run: python3 Protocol/vectors/normalization-v1.py > Protocol/vectors/normalization-v1.json
"""
import hashlib
import json

TYPE_CODE = {"email": 0x01, "phone": 0x02, "maid": 0x03, "custom": 0x04}
VERSION = 1


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ok(vid, typ, inp, normalized, rules=None, comment=None, prehashed=None, input_hex=None):
    """A vector that normalizes. `prehashed` is the 64-hex digest for hashed input (normalized is None)."""
    if prehashed is not None:
        match = prehashed.lower()
    elif typ in ("email", "phone"):
        match = sha(normalized)
    else:
        match = normalized.encode("utf-8").hex()
    n = len(bytes.fromhex(match))
    message = bytes([TYPE_CODE[typ], VERSION, n >> 8, n & 0xFF]).hex() + match
    v = {"id": vid, "type": typ}
    if input_hex is not None:
        v["inputHex"] = input_hex
    else:
        v["input"] = inp
    v.update({"rules": rules or {}, "normalized": normalized, "matchValue": match, "hashToGroupMessage": message})
    if comment:
        v["comment"] = comment
    return v


def err(vid, typ, inp, code, rules=None, comment=None, input_hex=None):
    v = {"id": vid, "type": typ}
    if input_hex is not None:
        v["inputHex"] = input_hex
    else:
        v["input"] = inp
    v.update({"rules": rules or {}, "error": code})
    if comment:
        v["comment"] = comment
    return v


GMAIL = {"gmailRule": True}
US = {"defaultCountryCallingCode": "1"}
UK = {"defaultCountryCallingCode": "44"}
DE = {"defaultCountryCallingCode": "49"}
ALICE = "alice@example.com"

vectors = [
    # --- common steps (§2)
    err("common-empty", "email", "", "identifier.empty"),
    err("common-whitespace-only", "custom", " \t\r\n ", "identifier.empty"),
    err("common-unicode-whitespace-only", "phone", "\u00a0\u3000\u2003", "identifier.empty"),
    err("common-not-utf8-lone-continuation", "custom", None, "identifier.not_utf8", input_hex="61806263"),
    err("common-not-utf8-overlong-slash", "email", None, "identifier.not_utf8", input_hex="c0af"),
    err("common-not-utf8-latin1", "email", None, "identifier.not_utf8", input_hex="6ae9406578616d706c652e636f6d",
        comment="'j\\xe9@example.com' in Latin-1"),
    err("common-not-utf8-surrogate", "custom", None, "identifier.not_utf8", input_hex="eda080"),
    err("common-too-long-raw", "custom", "x" * 1025, "identifier.too_long"),
    ok("common-max-raw-custom", "custom", "y" * 1024, "y" * 1024),
    err("common-too-long-raw-whitespace", "email", ALICE + " " * 1010, "identifier.too_long",
        comment="the raw limit applies before trimming"),

    # --- email (§3)
    ok("email-plain", "email", ALICE, ALICE),
    ok("email-trim-lowercase", "email", "  Alice@Example.COM \t\n", ALICE),
    ok("email-unicode-whitespace-trim", "email", "\u00a0Alice@Example.com\u3000", ALICE),
    ok("email-atext-specials", "email", "A!#$%&'*+-/=?^_`{|}~Z@example.com", "a!#$%&'*+-/=?^_`{|}~z@example.com"),
    ok("email-dots-inside-local", "email", "first.middle.last@example.com", "first.middle.last@example.com"),
    ok("email-plus-kept-without-gmail-rule", "email", "alice+news@example.com", "alice+news@example.com"),
    ok("email-subdomain-hyphen-digits", "email", "bob@mail-1.Example123.co.uk", "bob@mail-1.example123.co.uk"),
    ok("email-numeric-label-not-tld", "email", "bob@123.example", "bob@123.example"),
    ok("email-tld-alnum", "email", "bob@example.c0m", "bob@example.c0m"),
    ok("email-local-64", "email", "l" * 64 + "@example.com", "l" * 64 + "@example.com"),
    ok("email-label-63", "email", "bob@" + "d" * 63 + ".com", "bob@" + "d" * 63 + ".com"),
    ok("email-max-254", "email", "l" * 64 + "@" + ".".join(["d" * 63, "d" * 63, "d" * 61]),
       "l" * 64 + "@" + ".".join(["d" * 63, "d" * 63, "d" * 61])),
    ok("email-punycode-domain", "email", "hans@XN--BCHER-KVA.de", "hans@xn--bcher-kva.de",
       comment="IDNA A-labels are ordinary ASCII labels"),
    err("email-too-long-255", "email", "l" * 64 + "@" + ".".join(["d" * 63, "d" * 63, "d" * 62]), "identifier.email.too_long"),
    err("email-no-at", "email", "alice.example.com", "identifier.email.malformed"),
    err("email-two-at", "email", "alice@bob@example.com", "identifier.email.malformed"),
    err("email-quoted-at", "email", "\"alice@x\"@example.com", "identifier.email.malformed"),
    err("email-empty-local", "email", "@example.com", "identifier.email.invalid_local_part"),
    err("email-local-65", "email", "l" * 65 + "@example.com", "identifier.email.invalid_local_part"),
    err("email-leading-dot", "email", ".alice@example.com", "identifier.email.invalid_local_part"),
    err("email-trailing-dot", "email", "alice.@example.com", "identifier.email.invalid_local_part"),
    err("email-consecutive-dots", "email", "al..ice@example.com", "identifier.email.invalid_local_part"),
    err("email-quoted-local", "email", "\"alice smith\"@example.com", "identifier.email.invalid_local_part"),
    err("email-space-in-local", "email", "alice smith@example.com", "identifier.email.invalid_local_part"),
    err("email-comma-in-local", "email", "alice,smith@example.com", "identifier.email.invalid_local_part"),
    err("email-angle-brackets", "email", "<alice@example.com>", "identifier.email.invalid_local_part"),
    err("email-display-name", "email", "Alice <alice@example.com>", "identifier.email.invalid_local_part"),
    err("email-empty-domain", "email", "alice@", "identifier.email.invalid_domain"),
    err("email-single-label", "email", "alice@localhost", "identifier.email.invalid_domain"),
    err("email-domain-leading-dot", "email", "alice@.example.com", "identifier.email.invalid_domain"),
    err("email-domain-trailing-dot", "email", "alice@example.com.", "identifier.email.invalid_domain"),
    err("email-domain-double-dot", "email", "alice@example..com", "identifier.email.invalid_domain"),
    err("email-label-leading-hyphen", "email", "alice@-example.com", "identifier.email.invalid_domain"),
    err("email-label-trailing-hyphen", "email", "alice@example-.com", "identifier.email.invalid_domain"),
    err("email-label-64", "email", "bob@" + "d" * 64 + ".com", "identifier.email.invalid_domain"),
    err("email-numeric-tld", "email", "alice@example.123", "identifier.email.invalid_domain"),
    err("email-ip-literal", "email", "alice@[192.0.2.1]", "identifier.email.invalid_domain"),
    err("email-ip-address-domain", "email", "alice@192.0.2.1", "identifier.email.invalid_domain"),
    err("email-underscore-domain", "email", "alice@ex_ample.com", "identifier.email.invalid_domain"),
    err("email-inner-space-domain", "email", "alice@example .com", "identifier.email.invalid_domain"),
    err("email-non-ascii-local", "email", "jos\u00e9@example.com", "identifier.email.non_ascii"),
    err("email-non-ascii-domain", "email", "alice@b\u00fccher.de", "identifier.email.non_ascii"),

    # --- Gmail rule (§3.1)
    ok("gmail-rule-off-keeps-dots-and-tag", "email", "Jane.Doe+promo@Gmail.com", "jane.doe+promo@gmail.com"),
    ok("gmail-rule-off-keeps-googlemail", "email", "jane.doe@googlemail.com", "jane.doe@googlemail.com"),
    ok("gmail-rule-on", "email", "Jane.Doe+promo@Gmail.com", "janedoe@gmail.com", rules=GMAIL),
    ok("gmail-rule-on-googlemail", "email", "j.a.n.e.doe+x+y@GoogleMail.com", "janedoe@gmail.com", rules=GMAIL),
    ok("gmail-rule-on-plain", "email", "janedoe@gmail.com", "janedoe@gmail.com", rules=GMAIL),
    ok("gmail-rule-on-other-domain-untouched", "email", "jane.doe+promo@example.com", "jane.doe+promo@example.com", rules=GMAIL),
    ok("gmail-rule-on-subdomain-untouched", "email", "jane.doe+x@mail.gmail.com", "jane.doe+x@mail.gmail.com", rules=GMAIL),
    err("gmail-rule-on-empty-after-tag", "email", "+promo@gmail.com", "identifier.email.invalid_local_part", rules=GMAIL),

    # --- pre-hashed (§7)
    ok("hashed-email-lower", "email", sha(ALICE), None, prehashed=sha(ALICE),
       comment="equals the match value of email-plain"),
    ok("hashed-email-upper", "email", sha(ALICE).upper(), None, prehashed=sha(ALICE),
       comment="equals the match value of email-plain"),
    ok("hashed-email-padded", "email", "  " + sha(ALICE).upper() + "\n", None, prehashed=sha(ALICE)),
    ok("hashed-email-gmail", "email", sha("janedoe@gmail.com"), None, prehashed=sha("janedoe@gmail.com"), rules=GMAIL,
       comment="equals the match value of gmail-rule-on"),
    ok("hashed-phone", "phone", sha("+14155550100"), None, prehashed=sha("+14155550100"),
       comment="equals the match value of phone-plus"),
    err("hashed-md5-shape", "email", hashlib.md5(ALICE.encode()).hexdigest(), "identifier.hash.md5_shape"),
    err("hashed-md5-shape-upper", "email", hashlib.md5(ALICE.encode()).hexdigest().upper(), "identifier.hash.md5_shape"),
    err("hashed-sha1-shape", "email", hashlib.sha1(ALICE.encode()).hexdigest(), "identifier.hash.sha1_shape"),
    err("hashed-sha224-shape", "email", hashlib.sha224(ALICE.encode()).hexdigest(), "identifier.hash.sha224_shape"),
    err("hashed-sha384-shape", "email", hashlib.sha384(ALICE.encode()).hexdigest(), "identifier.hash.sha384_shape"),
    err("hashed-sha512-shape", "email", hashlib.sha512(ALICE.encode()).hexdigest(), "identifier.hash.sha512_shape"),
    err("hashed-phone-sha1-shape", "phone", hashlib.sha1(b"+14155550100").hexdigest(), "identifier.hash.sha1_shape"),
    err("hashed-63-hex-is-not-a-hash", "email", sha(ALICE)[:63], "identifier.email.malformed"),
    err("hashed-64-with-non-hex", "email", sha(ALICE)[:63] + "g", "identifier.email.malformed"),

    # --- phone (§4)
    ok("phone-plus", "phone", "+1 (415) 555-0100", "+14155550100"),
    ok("phone-plus-dots", "phone", "+44.20.7946.0958", "+442079460958"),
    ok("phone-plus-no-default-needed", "phone", "+4930901820", "+4930901820"),
    ok("phone-00-prefix", "phone", "0044 20 7946 0958", "+442079460958"),
    ok("phone-00-prefix-ignores-default", "phone", "0044 20 7946 0958", "+442079460958", rules=US),
    ok("phone-national-us", "phone", "(415) 555-0100", "+14155550100", rules=US),
    ok("phone-national-nanp-11", "phone", "1-415-555-0100", "+14155550100", rules=US),
    ok("phone-national-uk-trunk", "phone", "020 7946 0958", "+442079460958", rules=UK),
    ok("phone-national-de-trunk", "phone", "030 901820", "+4930901820", rules=DE),
    ok("phone-national-11-not-nanp", "phone", "14155550100", "+4414155550100", rules=UK,
       comment="the NANP case applies only with default code 1"),
    ok("phone-default-with-plus", "phone", "(415) 555-0100", "+14155550100", rules={"defaultCountryCallingCode": "+1"}),
    ok("phone-min-8", "phone", "+1234 5678", "+12345678"),
    ok("phone-max-15", "phone", "+123456789012345", "+123456789012345"),
    ok("phone-nanp-local-7-digits-accepted", "phone", "555-0100", "+15550100", rules=US,
       comment="known limitation (NORMALIZATION.md section 4): 8 digits with the country code"),
    err("phone-national-no-default", "phone", "(415) 555-0100", "identifier.phone.no_country_code"),
    err("phone-letters", "phone", "+1 415 555 CALL", "identifier.phone.invalid_character"),
    err("phone-extension", "phone", "+1 415 555 0100 ext 12", "identifier.phone.invalid_character"),
    err("phone-extension-x", "phone", "+14155550100x12", "identifier.phone.invalid_character"),
    err("phone-slash", "phone", "+49 30/901820", "identifier.phone.invalid_character"),
    err("phone-inner-plus", "phone", "1+4155550100", "identifier.phone.invalid_character"),
    err("phone-double-plus", "phone", "++14155550100", "identifier.phone.invalid_character"),
    err("phone-tab-inside", "phone", "+1\t4155550100", "identifier.phone.invalid_character"),
    err("phone-fullwidth-digits", "phone", "\uff0b\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff10\uff10", "identifier.phone.invalid_character"),
    err("phone-too-short", "phone", "+1234567", "identifier.phone.too_short"),
    err("phone-too-short-national", "phone", "0 555 01", "identifier.phone.too_short", rules=UK,
        comment="+4455501 has 7 digits"),
    err("phone-32-digits-md5-shape", "phone", "1" * 32, "identifier.hash.md5_shape",
        comment="hex-only values of a digest length are read as digests first (section 7)"),
    err("phone-too-long", "phone", "+1234567890123456", "identifier.phone.too_long"),
    err("phone-only-plus", "phone", "+", "identifier.phone.too_short"),
    err("phone-only-separators", "phone", "( ) - .", "identifier.phone.too_short"),
    err("phone-plus-zero-country", "phone", "+0 415 555 0100", "identifier.phone.invalid_country_code"),
    err("phone-000-prefix", "phone", "000 415 555 0100", "identifier.phone.invalid_country_code"),

    # --- mobile ad ID (§5)
    ok("maid-hyphenated-lower", "maid", "6d92078a-8246-4ba4-ae5b-76104861e7dc", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
    ok("maid-hyphenated-upper-trimmed", "maid", " 6D92078A-8246-4BA4-AE5B-76104861E7DC\r\n", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
    ok("maid-bare", "maid", "6d92078a82464ba4ae5b76104861e7dc", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
    ok("maid-bare-upper", "maid", "6D92078A82464BA4AE5B76104861E7DC", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
    err("maid-all-zero", "maid", "00000000-0000-0000-0000-000000000000", "identifier.maid.opted_out"),
    err("maid-all-zero-bare", "maid", "00000000000000000000000000000000", "identifier.maid.opted_out"),
    err("maid-braces", "maid", "{6d92078a-8246-4ba4-ae5b-76104861e7dc}", "identifier.maid.malformed"),
    err("maid-wrong-groups", "maid", "6d92078a8-246-4ba4-ae5b-76104861e7dc", "identifier.maid.malformed"),
    err("maid-non-hex", "maid", "6d92078a-8246-4ba4-ae5b-76104861e7dg", "identifier.maid.malformed"),
    err("maid-short", "maid", "6d92078a-8246-4ba4-ae5b-76104861e7d", "identifier.maid.malformed"),
    err("maid-bare-31", "maid", "6d92078a82464ba4ae5b76104861e7d", "identifier.maid.malformed"),
    err("maid-inner-space", "maid", "6d92078a 8246 4ba4 ae5b 76104861e7dc", "identifier.maid.malformed"),

    # --- custom (§6)
    ok("custom-exact", "custom", "Loyalty-00042", "Loyalty-00042", comment="case is kept"),
    ok("custom-trim", "custom", "\t Loyalty-00042 \r\n", "Loyalty-00042"),
    ok("custom-nfc-decomposed", "custom", "Rene\u0301e", "Ren\u00e9e"),
    ok("custom-nfc-precomposed", "custom", "Ren\u00e9e", "Ren\u00e9e"),
    ok("custom-nfc-hangul", "custom", "\u1100\u1161", "\uac00"),
    ok("custom-inner-space-kept", "custom", "a  b", "a  b"),
    ok("custom-unicode-trim", "custom", "\u2003\u00e9t\u00e9\u00a0", "\u00e9t\u00e9"),
    ok("custom-bom-not-trimmed", "custom", "\ufeffid-7", "\ufeffid-7",
       comment="U+FEFF is not White_Space; stripping a BOM is the CSV reader's job"),
    ok("custom-zero-width-space-not-trimmed", "custom", "\u200bid-7", "\u200bid-7"),
    ok("custom-looks-like-hash", "custom", sha(ALICE).upper(), sha(ALICE).upper(),
       comment="custom values are never read as pre-hashed"),
]

ids = [v["id"] for v in vectors]
assert len(ids) == len(set(ids)), "duplicate vector id"

print(json.dumps({
    "description": "Normalization vectors for CleanRoom identifier rule set version 1.",
    "source": "CleanRoom's own vectors, derived from Protocol/NORMALIZATION.md (rule set v1); "
              "expected forms and error codes written by hand, digests computed with Python hashlib "
              "by Protocol/vectors/normalization-v1.py.",
    "fields": {
        "input": "the raw value as a UTF-8 string; inputHex instead when the bytes are not UTF-8",
        "rules": "options for NormalizationRules (version 1); absent keys take the defaults",
        "normalized": "expected normalized form (null for pre-hashed input)",
        "matchValue": "expected MatchValue.bytes, hex",
        "hashToGroupMessage": "expected MatchValue.hashToGroupMessage, hex",
        "error": "expected IdentifierError code (then the other outputs are absent)",
    },
    "rulesVersion": VERSION,
    "vectors": vectors,
}, indent=2, ensure_ascii=True))
