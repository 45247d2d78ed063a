import RistrettoPSI

/// The hash-chain construction, written once: the canonical bytes of an entry, its hash, and what
/// the coordinator signs.
///
/// ```
/// canonical = "CLEANROOM-AUDIT-V1"                      (18 ASCII bytes, no length prefix)
///          || u64(sequence)
///          || str(entry_id) || str(collaboration_id) || str(run_id) || str(event_kind)
///          || u64(recorded_at_ms)
///          || u64(consumer_rows_processed) || u64(consumer_identifiers_processed)
///          || u64(matched_rows_delivered)  || u64(delivered_object_count)
///          || opt(delivery_manifest_sha256) || opt(agreement_sha256)
///          || str(protocol_version) || str(normalization_rules_version)
///          || optstr(reason_code)
///          || previous_hash                              (32 raw bytes)
///          [|| u32(8) || u64(privacy_epsilon_millis)]    (schema 2, only when present)
/// entry_hash = SHA-256(canonical)
/// signature  = Ed25519-Sign(coordinator key, entry_hash)  (the 32 raw bytes of entry_hash)
/// ```
/// `u64` is 8 bytes big-endian; `str(s)` is `u32(len(utf8(s))) || utf8(s)` with `u32` 4 bytes
/// big-endian; `opt(d)` is `u32(0)` when absent or `u32(32) || d`; `optstr(s)` is `u32(0)` when
/// absent or `str(s)` (an empty reason code is invalid, so 0 means absent unambiguously).
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Hash chain".
public enum AuditChain {
    /// The domain-separation prefix of every entry's canonical bytes.
    public static let domainSeparationTag = "CLEANROOM-AUDIT-V1"
    /// The previous hash of entry 1.
    public static let genesisPreviousHash = AuditDigest.zero

    /// The canonical byte encoding of an entry's fields (the exact bytes hashed).
    public static func canonicalBytes(
        sequence: Int64, entryID: String, recordedAtMilliseconds: Int64,
        event: AuditEvent, previousHash: AuditDigest
    ) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(256)
        out.append(contentsOf: Array(domainSeparationTag.utf8))
        u64(&out, UInt64(bitPattern: sequence))
        str(&out, entryID)
        str(&out, event.collaborationID)
        str(&out, event.runID)
        str(&out, event.kind.rawValue)
        u64(&out, UInt64(bitPattern: recordedAtMilliseconds))
        u64(&out, UInt64(event.consumerRowsProcessed))
        u64(&out, UInt64(event.consumerIdentifiersProcessed))
        u64(&out, UInt64(event.matchedRowsDelivered))
        u64(&out, UInt64(event.deliveredObjectCount))
        opt(&out, event.deliveryManifestSHA256)
        opt(&out, event.agreementSHA256)
        str(&out, event.protocolVersion)
        str(&out, event.normalizationRulesVersion)
        if let reason = event.reasonCode { str(&out, reason) } else { u32(&out, 0) }
        out.append(contentsOf: previousHash.bytes)
        // Schema 2: appended only when present, so every entry without it keeps its v1 bytes.
        if let eps = event.privacyEpsilonMillis {
            u32(&out, 8)
            u64(&out, UInt64(eps))
        }
        return out
    }

    /// `SHA-256(canonicalBytes(…))`.
    public static func entryHash(
        sequence: Int64, entryID: String, recordedAtMilliseconds: Int64,
        event: AuditEvent, previousHash: AuditDigest
    ) -> AuditDigest {
        AuditDigest.sha256(
            of: canonicalBytes(
                sequence: sequence, entryID: entryID, recordedAtMilliseconds: recordedAtMilliseconds,
                event: event, previousHash: previousHash))
    }

    /// The entry hash recomputed from a stored entry's fields.
    public static func recomputedHash(of entry: AuditEntry) -> AuditDigest {
        entryHash(
            sequence: entry.sequence, entryID: entry.entryID, recordedAtMilliseconds: entry.recordedAtMilliseconds,
            event: entry.event, previousHash: entry.previousHash)
    }

    /// Whether `entry.signature` is the coordinator's signature over `entry.entryHash`.
    public static func isValidSignature(of entry: AuditEntry, key: VerifyingKey) -> Bool {
        key.isValidSignature(entry.signature, for: entry.entryHash.bytes)
    }

    private static func u32(_ out: inout [UInt8], _ v: UInt32) {
        withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
    }

    private static func u64(_ out: inout [UInt8], _ v: UInt64) {
        withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
    }

    private static func str(_ out: inout [UInt8], _ s: String) {
        let b = Array(s.utf8)
        u32(&out, UInt32(b.count))
        out.append(contentsOf: b)
    }

    private static func opt(_ out: inout [UInt8], _ d: AuditDigest?) {
        guard let d else {
            u32(&out, 0)
            return
        }
        u32(&out, UInt32(d.bytes.count))
        out.append(contentsOf: d.bytes)
    }
}
