import Foundation
import RistrettoPSI

/// A consumer-held record of the log's head: sequence number, head hash and coordinator key.
///
/// Kept outside the database (a small JSON file), it lets ``AuditLog/verify(pinnedKey:checkpoint:)``
/// detect what the chain alone cannot: removal of the newest entries, a rewrite of the whole log
/// after the checkpoint, and a replaced coordinator key.
///
/// File format (UTF-8 JSON object, keys sorted):
/// ```
/// {"coordinator_public_key": <64 hex>, "created_at": <ISO 8601 UTC>,
///  "format": "CLEANROOM-AUDIT-CHECKPOINT-V1", "head_hash": <64 hex>, "sequence": <integer >= 0>}
/// ```
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Checkpoints".
public struct AuditCheckpoint: Sendable, Equatable {
    /// The `format` value of every checkpoint file.
    public static let format = "CLEANROOM-AUDIT-CHECKPOINT-V1"
    /// The sequence number of the head entry (0 for an empty log).
    public let sequence: Int64
    /// The head entry's entry hash (32 zero bytes for an empty log).
    public let headHash: AuditDigest
    /// The coordinator key the log verified under.
    public let coordinatorKey: VerifyingKey
    /// When the checkpoint was taken, milliseconds since the epoch (UTC); informational.
    public let createdAtMilliseconds: Int64

    /// Takes the fields as given, unchecked; ``AuditLog/checkpoint(pinnedKey:at:)`` takes one of a
    /// log that verifies.
    public init(sequence: Int64, headHash: AuditDigest, coordinatorKey: VerifyingKey, createdAtMilliseconds: Int64) {
        self.sequence = sequence
        self.headHash = headHash
        self.coordinatorKey = coordinatorKey
        self.createdAtMilliseconds = createdAtMilliseconds
    }

    /// The JSON encoding (sorted keys, trailing newline).
    public func jsonData() -> Data {
        let object: [String: Any] = [
            "format": AuditCheckpoint.format,
            "sequence": sequence,
            "head_hash": headHash.hex,
            "coordinator_public_key": coordinatorKey.hex,
            "created_at": AuditTime.iso8601(milliseconds: createdAtMilliseconds),
        ]
        // Every value is a string or an integer, so serialization cannot fail.
        var data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data()
        data.append(0x0a)
        return data
    }

    /// Decodes a checkpoint. - Throws: `.invalidCheckpoint` naming the field and rule.
    public init(jsonData data: Data) throws(AuditLogError) {
        func bad(_ rule: String) -> AuditLogError { AuditLogError(.invalidCheckpoint, rule) }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw bad("a checkpoint is a JSON object")
        }
        guard object["format"] as? String == AuditCheckpoint.format else {
            throw bad("format must be \(AuditCheckpoint.format)")
        }
        guard let n = object["sequence"] as? NSNumber, !(object["sequence"] is Bool), n.doubleValue >= 0,
            n.doubleValue < 9_007_199_254_740_992, n.doubleValue == n.doubleValue.rounded()
        else {
            throw bad("sequence must be a non-negative integer")
        }
        guard let headHex = object["head_hash"] as? String,
            let head = try? AuditDigest(hex: headHex, field: "head_hash")
        else {
            throw bad("head_hash must be 64 lowercase hex characters")
        }
        guard let keyHex = object["coordinator_public_key"] as? String, let key = try? VerifyingKey(hex: keyHex) else {
            throw bad("coordinator_public_key must be a valid Ed25519 public key in hex")
        }
        // The time it was written, as written (milliseconds, UTC): a checkpoint read back is equal
        // to the one written.
        guard let created = object["created_at"] as? String, let date = UTCTimestamp.parse(created) else {
            throw bad("created_at must be an RFC 3339 UTC time")
        }
        self.init(
            sequence: Int64(n.doubleValue), headHash: head, coordinatorKey: key,
            createdAtMilliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    /// Reads a checkpoint file. - Throws: `.io` when unreadable, `.invalidCheckpoint` when malformed.
    public static func read(from path: String) throws(AuditLogError) -> AuditCheckpoint {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AuditLogError(.io, "cannot read checkpoint '\(path)'")
        }
        do { return try AuditCheckpoint(jsonData: data) } catch {
            throw AuditLogError(error.code, "checkpoint '\(path)': \(error.reason)")
        }
    }

    /// Writes the checkpoint atomically (temporary file, then rename). - Throws: `.io`.
    public func write(to path: String) throws(AuditLogError) {
        do { try jsonData().write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw AuditLogError(.io, "cannot write checkpoint '\(path)'")
        }
    }
}
