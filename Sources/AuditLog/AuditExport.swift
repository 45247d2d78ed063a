import Foundation
import RistrettoPSI

/// Export formats for loading the log into a data platform.
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Export".
public enum AuditExportFormat: String, Sendable, CaseIterable {
    /// RFC 4180 CSV with a header row, CRLF line ends.
    case csv
    /// One JSON object per line (JSON Lines), keys sorted, `null` for absent values.
    case jsonl
}

extension AuditLog {
    /// The exported columns, in order: every stored column plus `recorded_at` (ISO 8601 UTC).
    public static let exportColumns = [
        "sequence", "entry_id", "collaboration_id", "run_id", "event_kind", "recorded_at", "recorded_at_ms",
        "consumer_rows_processed", "consumer_identifiers_processed", "matched_rows_delivered",
        "delivered_object_count", "delivery_manifest_sha256", "agreement_sha256", "protocol_version",
        "normalization_rules_version", "reason_code", "previous_hash", "entry_hash", "signature",
        "privacy_epsilon_millis",
    ]

    /// Streams the log in `format` to `write`, one line (or the CSV header) per call.
    ///
    /// Exports what is stored; it does not verify (run ``verify(pinnedKey:checkpoint:)`` first).
    /// - Throws: any read error; errors from `write` are passed through as `.io`.
    public func export(format: AuditExportFormat, to write: (String) throws -> Void) throws(AuditLogError) {
        func emit(_ line: String) throws(AuditLogError) {
            do { try write(line) } catch { throw AuditLogError(.io, "cannot write the export: \(error)") }
        }
        if format == .csv { try emit(AuditLog.exportColumns.joined(separator: ",") + "\r\n") }
        try forEachEntry { (e: AuditEntry) throws(AuditLogError) in
            let values: [Any?] = [
                e.sequence, e.entryID, e.event.collaborationID, e.event.runID, e.event.kind.rawValue,
                e.recordedAtISO8601,
                e.recordedAtMilliseconds, Int64(e.event.consumerRowsProcessed),
                Int64(e.event.consumerIdentifiersProcessed),
                Int64(e.event.matchedRowsDelivered), Int64(e.event.deliveredObjectCount),
                e.event.deliveryManifestSHA256?.hex,
                e.event.agreementSHA256?.hex, e.event.protocolVersion, e.event.normalizationRulesVersion,
                e.event.reasonCode,
                e.previousHash.hex, e.entryHash.hex, Hex.encode(e.signature),
                e.event.privacyEpsilonMillis.map { Int64($0) },
            ]
            switch format {
            case .csv:
                try emit(
                    values.map { v in
                        guard let v else { return "" }
                        if let i = v as? Int64 { return String(i) }
                        return AuditLog.csvField(v as! String)
                    }.joined(separator: ",") + "\r\n")
            case .jsonl:
                let pairs = zip(AuditLog.exportColumns, values).sorted { $0.0 < $1.0 }
                let body = pairs.map { (k, v) -> String in
                    let value: String
                    if let i = v as? Int64 {
                        value = String(i)
                    } else if let s = v as? String {
                        value = AuditLog.jsonString(s)
                    } else {
                        value = "null"
                    }
                    return "\(AuditLog.jsonString(k)):\(value)"
                }.joined(separator: ",")
                try emit("{\(body)}\n")
            }
        }
    }

    /// One RFC 4180 field: quoted when it holds a comma, a quote, CR or LF (RFC 4180 §2 rules 6–7).
    ///
    /// Compares bytes, not `Character`s: Swift folds CR LF into one grapheme that equals neither
    /// `"\r"` nor `"\n"`, so a field holding CRLF would otherwise go out unquoted and split the row;
    /// likewise a quote followed by a combining mark would not be doubled.
    static func csvField(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x2c || $0 == 0x22 || $0 == 0x0a || $0 == 0x0d }) else { return s }
        var out: [UInt8] = [0x22]
        for b in s.utf8 {
            if b == 0x22 { out.append(0x22) }
            out.append(b)
        }
        out.append(0x22)
        return String(decoding: out, as: UTF8.self)
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
