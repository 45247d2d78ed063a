#!/usr/bin/env python3
"""Generates audit-entry-v1.json: the worked example of Protocol/AUDIT_LOG.md §"Hash chain".

An implementation independent of the Swift code (Python hashlib + pyca/cryptography Ed25519),
following the byte layout in AUDIT_LOG.md. Run: python3 generate_audit_vectors.py > audit-entry-v1.json
"""
import hashlib, json, struct
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

TAG = b"CLEANROOM-AUDIT-V1"

def u32(n): return struct.pack(">I", n)
def u64(n): return struct.pack(">Q", n)
def s(x): b = x.encode(); return u32(len(b)) + b
def opt(h): return u32(0) if h is None else u32(32) + bytes.fromhex(h)
def optstr(x): return u32(0) if x is None else s(x)

def canonical(e):
    return (TAG + u64(e["sequence"]) + s(e["entry_id"]) + s(e["collaboration_id"]) + s(e["run_id"])
            + s(e["event_kind"]) + u64(e["recorded_at_ms"]) + u64(e["consumer_rows_processed"])
            + u64(e["consumer_identifiers_processed"]) + u64(e["matched_rows_delivered"])
            + u64(e["delivered_object_count"]) + opt(e["delivery_manifest_sha256"]) + opt(e["agreement_sha256"])
            + s(e["protocol_version"]) + s(e["normalization_rules_version"]) + optstr(e["reason_code"])
            + bytes.fromhex(e["previous_hash"]))

seed = hashlib.sha256(b"CLEANROOM-AUDIT-V1 test vector coordinator seed").digest()
sk = Ed25519PrivateKey.from_private_bytes(seed)
pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
agreement = hashlib.sha256(b"example agreement").hexdigest()
entries = [
    dict(sequence=1, entry_id="00112233445566778899aabbccddeeff", collaboration_id="collab-2026-q4", run_id="run-0001",
         event_kind="delivered", recorded_at_ms=1796395800000, consumer_rows_processed=1000,
         consumer_identifiers_processed=1500, matched_rows_delivered=250, delivered_object_count=2,
         delivery_manifest_sha256=hashlib.sha256(b"example manifest").hexdigest(), agreement_sha256=agreement,
         protocol_version="CLEANROOM-V01", normalization_rules_version="norm-1", reason_code=None),
    dict(sequence=2, entry_id="ffeeddccbbaa99887766554433221100", collaboration_id="collab-2026-q4", run_id="run-0002",
         event_kind="rejected", recorded_at_ms=1796395860000, consumer_rows_processed=0,
         consumer_identifiers_processed=0, matched_rows_delivered=0, delivered_object_count=0,
         delivery_manifest_sha256=None, agreement_sha256=agreement,
         protocol_version="CLEANROOM-V01", normalization_rules_version="norm-1", reason_code="frequency.cap_reached"),
]
prev = "00" * 32
out = []
for e in entries:
    e = dict(coordinator_seed=seed.hex(), coordinator_public_key=pk, **e, previous_hash=prev)
    c = canonical(e)
    h = hashlib.sha256(c).digest()
    e.update(canonical_bytes=c.hex(), entry_hash=h.hex(), signature=sk.sign(h).hex())
    out.append(e)
    prev = h.hex()
print(json.dumps({"source": "Protocol/vectors/generate_audit_vectors.py (Python hashlib + pyca/cryptography Ed25519)",
                  "vectors": out}, indent=2))
