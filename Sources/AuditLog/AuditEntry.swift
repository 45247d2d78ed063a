import Foundation
import RistrettoPSI

/// A 32-byte SHA-256 digest recorded in the log (manifest, agreement, previous and entry hashes).
///
/// Contract: only 32-byte values exist; stored and printed as lowercase hex.
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Schema".
public struct AuditDigest: Hashable, Sendable, CustomStringConvertible {
    /// The 32 digest bytes.
    public let bytes: [UInt8]

    /// Wraps 32 bytes. - Throws: `.invalidField` for any other length.
    public init(bytes: [UInt8]) throws(AuditLogError) {
        guard bytes.count == SHA256.byteCount else {
            throw AuditLogError(.invalidField, "a SHA-256 digest is 32 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// Decodes 64 lowercase hex characters. - Throws: `.invalidField` naming `field`.
    public init(hex: String, field: String = "digest") throws(AuditLogError) {
        guard hex.utf8.count == 64, hex.utf8.allSatisfy(FieldRules.isLowerHex), let b = Hex.decode(hex) else {
            throw AuditLogError(.invalidField, "\(field) must be 64 lowercase hex characters")
        }
        self.bytes = b
    }

    init(trusted bytes: [UInt8]) { self.bytes = bytes }

    /// The SHA-256 of `data`.
    public static func sha256<C: Collection>(of data: C) -> AuditDigest where C.Element == UInt8 {
        AuditDigest(trusted: SHA256.hash(data))
    }

    /// All zeros: the previous hash of entry 1.
    public static let zero = AuditDigest(trusted: [UInt8](repeating: 0, count: 32))

    /// Lowercase hex.
    public var hex: String { Hex.encode(bytes) }
    /// The lowercase hex, as stored.
    public var description: String { hex }
}

/// What became of a run: the closed set of event kinds.
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Schema" (`event_kind`).
public enum AuditEventKind: String, Sendable, CaseIterable, Codable {
    /// Matched rows were delivered; a delivery manifest exists.
    case delivered
    /// The run was refused before matching (agreement, frequency cap, re-run, bad input).
    case rejected
    /// The match count was below the agreement's minimum, so nothing was delivered.
    case belowThreshold = "below_threshold"
    /// The run failed after it was accepted; nothing was delivered.
    case failed
}

/// The facts a coordinator records about one run event: counts, hashes, versions, a reason code.
///
/// Contract: every field is validated by ``validate()`` before it reaches the database, and again
/// when the log is read back. IDs and versions are restricted to `[A-Za-z0-9._-]` so they cannot
/// carry an e-mail address, a free-text note or a path; reason codes are dotted lower-case codes.
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Field rules".
public struct AuditEvent: Hashable, Sendable {
    /// The collaboration the run belongs to (1–64 characters of `[A-Za-z0-9._-]`).
    public var collaborationID: String
    /// The run the event is about (same rule as ``collaborationID``).
    public var runID: String
    /// What became of the run; it decides which other fields are required or must be absent.
    public var kind: AuditEventKind
    /// Rows in the consumer's input file that the run read.
    public var consumerRowsProcessed: Int
    /// Identifiers (after normalization) that the run blinded and matched.
    public var consumerIdentifiersProcessed: Int
    /// Matched rows written to the delivery (0 unless `kind == .delivered`).
    public var matchedRowsDelivered: Int
    /// Objects written to the delivery location (0 unless `kind == .delivered`).
    public var deliveredObjectCount: Int
    /// SHA-256 of the delivery manifest (required for `.delivered`, absent otherwise).
    public var deliveryManifestSHA256: AuditDigest?
    /// SHA-256 of the signed agreement the run ran under (required for `.delivered` and
    /// `.belowThreshold`; optional for runs refused or failed before an agreement was read).
    public var agreementSHA256: AuditDigest?
    /// The protocol version, e.g. `CLEANROOM-V01`.
    public var protocolVersion: String
    /// The identifier normalization rules version, e.g. `norm-1`.
    public var normalizationRulesVersion: String
    /// A stable reason code such as `agreement.expired` (required for `.rejected` and `.failed`,
    /// optional for `.belowThreshold`, absent for `.delivered`).
    public var reasonCode: String?
    /// The ε (thousandths) the run spent under differential privacy, or nil when it drew no
    /// noise. When present, `matchedRowsDelivered` holds the noisy count (schema version 2).
    public var privacyEpsilonMillis: Int?

    /// Takes the fields as given: nothing is checked until ``validate()``, which
    /// ``AuditLog/append(_:signedBy:at:)`` calls before writing.
    public init(
        collaborationID: String, runID: String, kind: AuditEventKind,
        consumerRowsProcessed: Int, consumerIdentifiersProcessed: Int,
        matchedRowsDelivered: Int = 0, deliveredObjectCount: Int = 0,
        deliveryManifestSHA256: AuditDigest? = nil, agreementSHA256: AuditDigest? = nil,
        protocolVersion: String, normalizationRulesVersion: String, reasonCode: String? = nil,
        privacyEpsilonMillis: Int? = nil
    ) {
        self.collaborationID = collaborationID
        self.runID = runID
        self.kind = kind
        self.consumerRowsProcessed = consumerRowsProcessed
        self.consumerIdentifiersProcessed = consumerIdentifiersProcessed
        self.matchedRowsDelivered = matchedRowsDelivered
        self.deliveredObjectCount = deliveredObjectCount
        self.deliveryManifestSHA256 = deliveryManifestSHA256
        self.agreementSHA256 = agreementSHA256
        self.protocolVersion = protocolVersion
        self.normalizationRulesVersion = normalizationRulesVersion
        self.reasonCode = reasonCode
        self.privacyEpsilonMillis = privacyEpsilonMillis
    }

    /// Checks every field rule. - Throws: `.invalidField` naming the field and rule (never the value).
    public func validate() throws(AuditLogError) {
        try FieldRules.identifier(collaborationID, field: "collaboration_id")
        try FieldRules.identifier(runID, field: "run_id")
        try FieldRules.version(protocolVersion, field: "protocol_version")
        try FieldRules.version(normalizationRulesVersion, field: "normalization_rules_version")
        try FieldRules.count(consumerRowsProcessed, field: "consumer_rows_processed")
        try FieldRules.count(consumerIdentifiersProcessed, field: "consumer_identifiers_processed")
        try FieldRules.count(matchedRowsDelivered, field: "matched_rows_delivered")
        try FieldRules.count(deliveredObjectCount, field: "delivered_object_count")
        if let reasonCode { try FieldRules.reasonCode(reasonCode) }
        if let privacyEpsilonMillis, privacyEpsilonMillis < 1 {
            throw AuditLogError(.invalidField, "privacy_epsilon_millis must be absent or a positive integer")
        }
        switch kind {
        case .delivered:
            guard deliveryManifestSHA256 != nil else {
                throw invalid("delivery_manifest_sha256 is required for delivered")
            }
            guard agreementSHA256 != nil else { throw invalid("agreement_sha256 is required for delivered") }
            guard reasonCode == nil else { throw invalid("reason_code must be absent for delivered") }
        case .rejected, .failed, .belowThreshold:
            guard matchedRowsDelivered == 0, deliveredObjectCount == 0 else {
                throw invalid("matched_rows_delivered and delivered_object_count must be 0 for \(kind.rawValue)")
            }
            guard deliveryManifestSHA256 == nil else {
                throw invalid("delivery_manifest_sha256 must be absent for \(kind.rawValue)")
            }
            if kind == .belowThreshold {
                guard agreementSHA256 != nil else { throw invalid("agreement_sha256 is required for below_threshold") }
            } else {
                guard reasonCode != nil else { throw invalid("reason_code is required for \(kind.rawValue)") }
            }
        }
    }

    private func invalid(_ rule: String) -> AuditLogError { AuditLogError(.invalidField, rule) }
}

/// One row of `clean_room_audit_log`: an ``AuditEvent`` with its place in the signed hash chain.
///
/// Contract: values of this type come only from ``AuditLog/append(_:signedBy:at:)`` or from reading
/// a log; reading does not imply the chain verified (use ``AuditLog/verify(pinnedKey:checkpoint:)``).
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Hash chain".
public struct AuditEntry: Hashable, Sendable {
    /// 1, 2, 3, … with no gaps.
    public let sequence: Int64
    /// 32 lowercase hex characters from the CSPRNG; unique per entry.
    public let entryID: String
    /// Milliseconds since 1970-01-01T00:00:00Z (UTC) when the entry was appended.
    public let recordedAtMilliseconds: Int64
    /// The facts recorded, validated on append and again when read back.
    public let event: AuditEvent
    /// The entry hash of entry `sequence - 1`, or 32 zero bytes for entry 1.
    public let previousHash: AuditDigest
    /// SHA-256 over the canonical encoding (see ``AuditChain``).
    public let entryHash: AuditDigest
    /// The coordinator's 64-byte Ed25519 signature over the 32 bytes of ``entryHash``.
    public let signature: [UInt8]

    /// The append time as a `Date`.
    public var recordedAt: Date { Date(timeIntervalSince1970: Double(recordedAtMilliseconds) / 1000) }
    /// The append time as ISO 8601 UTC with milliseconds, e.g. `2026-12-04T14:43:05.123Z`.
    public var recordedAtISO8601: String { AuditTime.iso8601(milliseconds: recordedAtMilliseconds) }
}

/// The field rules, written once. - SeeAlso: `Protocol/AUDIT_LOG.md` §"Field rules".
enum FieldRules {
    /// IDs: 1–64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
    static let maxIdentifierLength = 64
    /// Versions: 1–32 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
    static let maxVersionLength = 32
    /// Reason codes: 2–4 dot-separated segments of `[a-z][a-z0-9_]*`, at most 64 characters.
    static let maxReasonCodeLength = 64
    /// Timestamps: 0 (1970) up to the end of year 9999.
    static let maxMilliseconds: Int64 = 253_402_300_799_999

    static func isLowerHex(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
            || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
    }

    private static func safe(_ s: String, max: Int, field: String) throws(AuditLogError) {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= max, isAlnum(u[0]),
            u.allSatisfy({
                isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
            })
        else {
            throw AuditLogError(
                .invalidField, "\(field) must be 1-\(max) characters of [A-Za-z0-9._-] starting with a letter or digit")
        }
    }

    static func identifier(_ s: String, field: String) throws(AuditLogError) {
        try safe(s, max: maxIdentifierLength, field: field)
    }
    static func version(_ s: String, field: String) throws(AuditLogError) {
        try safe(s, max: maxVersionLength, field: field)
    }

    static func count(_ n: Int, field: String) throws(AuditLogError) {
        guard n >= 0 else { throw AuditLogError(.invalidField, "\(field) must be a non-negative integer") }
    }

    static func entryID(_ s: String) throws(AuditLogError) {
        guard s.utf8.count == 32, s.utf8.allSatisfy(isLowerHex) else {
            throw AuditLogError(.invalidField, "entry_id must be 32 lowercase hex characters")
        }
    }

    static func milliseconds(_ ms: Int64) throws(AuditLogError) {
        guard ms >= 0, ms <= maxMilliseconds else {
            throw AuditLogError(.invalidField, "recorded_at_ms must lie between 1970 and the end of year 9999")
        }
    }

    static func reasonCode(_ s: String) throws(AuditLogError) {
        let rule =
            "reason_code must be 2-4 dot-separated segments of [a-z][a-z0-9_]*, at most \(maxReasonCodeLength) characters"
        guard !s.isEmpty, s.utf8.count <= maxReasonCodeLength else { throw AuditLogError(.invalidField, rule) }
        let segments = s.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard (2...4).contains(segments.count) else { throw AuditLogError(.invalidField, rule) }
        for seg in segments {
            guard let first = seg.first, first >= UInt8(ascii: "a"), first <= UInt8(ascii: "z"),
                seg.allSatisfy({
                    ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z"))
                        || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "_")
                })
            else {
                throw AuditLogError(.invalidField, rule)
            }
        }
    }
}

/// UTC time helpers (no locale, no time zone database).
enum AuditTime {
    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch (proleptic Gregorian, UTC).
    static func iso8601(milliseconds ms: Int64) -> String {
        let millis = Int(((ms % 1000) + 1000) % 1000)
        let seconds = (ms - Int64(millis)) / 1000
        var days = seconds / 86_400
        var rem = seconds % 86_400
        if rem < 0 {
            rem += 86_400
            days -= 1
        }
        let (y, m, d) = UTCTimestamp.civil(fromDays: days)
        func pad(_ v: Int64, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return
            "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rem / 3600, 2)):\(pad(rem % 3600 / 60, 2)):\(pad(rem % 60, 2)).\(pad(Int64(millis), 3))Z"
    }
}
