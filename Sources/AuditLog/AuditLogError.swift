/// The one error type of the audit-log module.
///
/// Equality is by ``code`` only, so callers and tests match on stable codes while the reason
/// carries context. A reason names the file, sequence number, field and rule that failed; it never
/// contains a field's value when that value was rejected, a key, a seed or a signature.
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Errors".
public struct AuditLogError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Stable error codes; the raw values are the ones listed in `Protocol/AUDIT_LOG.md`.
    public enum Code: String, Sendable, CaseIterable {
        /// The file is not an SQLite database, or is one without the audit log's application ID,
        /// schema version and metadata.
        case notAnAuditLog = "audit.not_an_audit_log"
        /// The file is an audit log written by a newer schema version than this build reads.
        case newerSchema = "audit.newer_schema"
        /// SQLite reports a malformed page, or `PRAGMA quick_check` finds damage.
        case corrupt = "audit.corrupt"
        /// The hash chain does not hold: a sequence gap, a wrong previous hash, or an entry hash
        /// that does not match the entry's fields (an edited, deleted, inserted or reordered row).
        case chainBroken = "audit.chain_broken"
        /// An entry's Ed25519 signature does not verify under the coordinator key in use.
        case signatureInvalid = "audit.signature_invalid"
        /// The pinned coordinator key (checkpoint or command line) differs from the database's,
        /// or the signing key given to `append` is not the log's coordinator key.
        case keyMismatch = "audit.key_mismatch"
        /// The log holds the checkpoint's sequence number, but with a different entry hash.
        case checkpointMismatch = "audit.checkpoint_mismatch"
        /// The log ends before the checkpoint's sequence number: its tail was removed.
        case truncated = "audit.truncated"
        /// A checkpoint file that is not valid checkpoint JSON.
        case invalidCheckpoint = "audit.invalid_checkpoint"
        /// A coordinator key file of the wrong shape.
        case invalidKey = "audit.invalid_key"
        /// A field outside its rule (charset, length, range, or the rules tying fields to the
        /// event kind); on append nothing is written.
        case invalidField = "audit.invalid_field"
        /// The database stayed locked by another writer past the busy timeout.
        case busy = "audit.busy"
        /// Any other file-system or SQLite failure (missing file, permissions, disk full, a
        /// file that already exists where a new log should be created).
        case io = "audit.io"
    }

    /// The stable code.
    public let code: Code
    /// A human-readable reason naming the rule that failed (never secret or identifying bytes).
    public let reason: String
    /// The sequence number of the entry concerned, when the error is about one entry.
    public let sequence: Int64?

    /// An error with its code, its reason and, when it concerns one entry, that entry's sequence number.
    public init(_ code: Code, _ reason: String, sequence: Int64? = nil) {
        self.code = code
        self.reason = reason
        self.sequence = sequence
    }

    /// The code's raw value, then `entry <sequence>` when there is one, then the reason.
    public var description: String {
        if let sequence { return "\(code.rawValue): entry \(sequence): \(reason)" }
        return "\(code.rawValue): \(reason)"
    }

    /// Equal when the codes are equal: the reason and the sequence number are ignored.
    public static func == (lhs: AuditLogError, rhs: AuditLogError) -> Bool { lhs.code == rhs.code }
    /// Hashes the code only, to agree with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// A code-only value for matching, e.g. `#expect(throws: AuditLogError(.truncated))`.
    public init(_ code: Code) { self.init(code, "") }
}
