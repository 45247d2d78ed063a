import Foundation
import RistrettoPSI

/// Round 1 message for the consumer: the provider's blinded, shuffled elements `H(y)·b`.
public struct ProviderBlindedSet: Sendable {
    /// The message, verified when it was parsed (signature, body SHA-256, record size).
    public let message: SignedMessage
    /// Parses and verifies `data` as a `providerBlinded` message under `agreement` (and of `run`,
    /// when given), records of one element each; `source` names the file in errors.
    ///
    /// Throws the `activation.message.*` code of the first rule broken (`Protocol/SPEC.md` §7); a
    /// record size the agreement does not imply is `activation.message.malformed`.
    public init(parsing data: consuming [UInt8], agreement: VerifiedAgreement, run: [UInt8]? = nil, source: String)
        throws(ActivationError)
    {
        message = try SignedMessage.parse(
            consume data, expecting: .providerBlinded, agreement: agreement, run: run, source: source)
        try Layout.expectRecordSize(message, Layout.elementSize, source)
    }
    init(_ m: SignedMessage) { message = m }
}

/// Round 1 message for the coordinator: per element of ``ProviderBlindedSet`` (same order) the
/// provider row and its sealed audience key.
public struct ProviderPayload: Sendable {
    /// The message, verified when it was parsed (signature, body SHA-256, record size).
    public let message: SignedMessage
    /// As ``ProviderBlindedSet/init(parsing:agreement:run:source:)``, for a `providerPayload`
    /// message, whose record size depends on whether the agreement seals audience keys.
    public init(parsing data: consuming [UInt8], agreement: VerifiedAgreement, run: [UInt8]? = nil, source: String)
        throws(ActivationError)
    {
        message = try SignedMessage.parse(
            consume data, expecting: .providerPayload, agreement: agreement, run: run, source: source)
        try Layout.expectRecordSize(message, Layout.payloadRecordSize(agreement), source)
    }
    init(_ m: SignedMessage) { message = m }
}

/// Round 2 message for the provider: the consumer's blinded, shuffled elements `H(x)·a`, each with
/// its doubly sealed attributes when the agreement delivers them.
public struct ConsumerBlindedSet: Sendable {
    /// The message, verified when it was parsed (signature, body SHA-256, record size).
    public let message: SignedMessage
    /// As ``ProviderBlindedSet/init(parsing:agreement:run:source:)``, for a `consumerBlinded`
    /// message, whose record size depends on whether the agreement delivers member IDs.
    public init(parsing data: consuming [UInt8], agreement: VerifiedAgreement, run: [UInt8]? = nil, source: String)
        throws(ActivationError)
    {
        message = try SignedMessage.parse(
            consume data, expecting: .consumerBlinded, agreement: agreement, run: run, source: source)
        try Layout.expectRecordSize(message, Layout.consumerRecordSize(agreement), source)
    }
    init(_ m: SignedMessage) { message = m }
}

/// Round 3 message for the coordinator: `H(x)·a·b`, shuffled again by the provider.
public struct ConsumerReblindedSet: Sendable {
    /// The message, verified when it was parsed (signature, body SHA-256, record size).
    public let message: SignedMessage
    /// As ``ProviderBlindedSet/init(parsing:agreement:run:source:)``, for a `consumerReblinded`
    /// message, whose record size depends on whether the agreement delivers member IDs.
    public init(parsing data: consuming [UInt8], agreement: VerifiedAgreement, run: [UInt8]? = nil, source: String)
        throws(ActivationError)
    {
        message = try SignedMessage.parse(
            consume data, expecting: .consumerReblinded, agreement: agreement, run: run, source: source)
        try Layout.expectRecordSize(message, Layout.consumerRecordSize(agreement), source)
    }
    init(_ m: SignedMessage) { message = m }
}

/// Round 4 message for the coordinator: `H(y)·b·a`, in round 1's order.
public struct ProviderReblindedSet: Sendable {
    /// The message, verified when it was parsed (signature, body SHA-256, record size).
    public let message: SignedMessage
    /// As ``ProviderBlindedSet/init(parsing:agreement:run:source:)``, for a `providerReblinded`
    /// message (records of one element each).
    public init(parsing data: consuming [UInt8], agreement: VerifiedAgreement, run: [UInt8]? = nil, source: String)
        throws(ActivationError)
    {
        message = try SignedMessage.parse(
            consume data, expecting: .providerReblinded, agreement: agreement, run: run, source: source)
        try Layout.expectRecordSize(message, Layout.elementSize, source)
    }
    init(_ m: SignedMessage) { message = m }
}

/// Record layouts and sealing contexts, written once.
/// - SeeAlso: `Protocol/SPEC.md` §7 "Message layout" and "Sealing records".
enum Layout {
    static let elementSize = RistrettoElement.byteCount
    /// Audience keys are padded to this size so record length reveals nothing.
    static let maxAudienceKey = 128
    /// Member IDs are padded to this size.
    static let maxMemberID = 64
    static let rowIndexSize = 8

    static func padded(_ value: [UInt8], to size: Int) -> [UInt8] {
        precondition(value.count <= size)
        return BE.u16(UInt16(value.count)) + value + [UInt8](repeating: 0, count: size - value.count)
    }
    /// ``padded(_:to:)`` appended to `out` in place (the prepares' per-row path).
    static func appendPadded(_ value: ArraySlice<UInt8>, to size: Int, into out: inout [UInt8]) {
        precondition(value.count <= size)
        out.append(UInt8(value.count >> 8))
        out.append(UInt8(value.count & 0xff))
        out.append(contentsOf: value)
        out.append(contentsOf: repeatElement(0, count: size - value.count))
    }
    static func unpadded(_ p: [UInt8]) -> [UInt8]? {
        guard p.count >= 2 else { return nil }
        let n = Int(p[0]) << 8 | Int(p[1])
        guard n <= p.count - 2 else { return nil }
        return Array(p[2..<(2 + n)])
    }

    static func payloadRecordSize(_ a: VerifiedAgreement) -> Int {
        rowIndexSize + 2 + maxAudienceKey + (a.terms.output.sealed ? RecordSealer.overhead : 0)
    }
    static var innerAttributeSize: Int { 2 + maxMemberID + RecordSealer.overhead }
    static var outerAttributeSize: Int { innerAttributeSize + RecordSealer.overhead }
    static func consumerRecordSize(_ a: VerifiedAgreement) -> Int {
        elementSize + (a.terms.output.deliverMemberID ? outerAttributeSize : 0)
    }

    static func context(_ label: String, _ a: VerifiedAgreement, _ run: [UInt8]) -> [UInt8] {
        Array("CLEANROOM-V01-\(label)".utf8) + a.collaborationUUID + run
    }
    static func payloadContext(_ a: VerifiedAgreement, _ run: [UInt8]) -> [UInt8] { context("PAYLOAD", a, run) }
    static func innerContext(_ a: VerifiedAgreement, _ run: [UInt8]) -> [UInt8] { context("ATTR-INNER", a, run) }
    static func outerContext(_ a: VerifiedAgreement, _ run: [UInt8]) -> [UInt8] { context("ATTR-OUTER", a, run) }

    static func expectRecordSize(_ m: SignedMessage, _ size: Int, _ source: String) throws(ActivationError) {
        guard m.recordSize == size else {
            throw ActivationError(
                .messageMalformed, "\(source): record size \(m.recordSize), the agreement implies \(size)")
        }
    }

    /// Strictly decodes the leading 32 bytes of every record.
    static func elements(of m: SignedMessage, source: String) throws(ActivationError) -> ElementBatch {
        // Honest parties never send an empty set (prepare refuses one); an empty set can only
        // probe the next step, so it is refused by name rather than matched as "nothing".
        guard m.count > 0 else { throw ActivationError(.emptySet, "\(source): the set has no elements") }
        let raw = leadingElementBytes(m)
        do { return try ElementBatch(validating: raw) } catch {
            throw ActivationError(
                .invalidElement,
                "\(source): element \(error.index.map(String.init) ?? "?") rejected: \(error.code.rawValue)")
        }
    }

    /// Reorders fixed-size records in place so that new position `j` holds old record
    /// `permutation[j]`, following the permutation's cycles with one record of scratch and one bit
    /// per record, instead of a second copy of the records.
    static func permuteRecords(_ records: UnsafeMutableRawBufferPointer, recordSize: Int, _ permutation: [Int]) {
        let n = permutation.count
        precondition(records.count == n * recordSize)
        guard n > 1 else { return }
        let base = records.baseAddress!
        var done = [UInt64](repeating: 0, count: (n + 63) / 64)
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: recordSize, alignment: 8)
        defer { scratch.deallocate() }
        for start in 0..<n where done[start >> 6] & (1 << UInt64(start & 63)) == 0 {
            scratch.copyMemory(from: base + start * recordSize, byteCount: recordSize)
            var j = start
            while true {
                done[j >> 6] |= 1 << UInt64(j & 63)
                let k = permutation[j]
                precondition(
                    k >= 0 && k < n && (k == start || done[k >> 6] & (1 << UInt64(k & 63)) == 0), "not a permutation")
                if k == start {
                    (base + j * recordSize).copyMemory(from: scratch, byteCount: recordSize)
                    break
                }
                (base + j * recordSize).copyMemory(from: base + k * recordSize, byteCount: recordSize)
                j = k
            }
        }
    }

    static func leadingElementBytes(_ m: SignedMessage) -> [UInt8] {
        if m.recordSize == elementSize { return m.body }
        var raw = [UInt8]()
        raw.reserveCapacity(m.count * elementSize)
        for i in 0..<m.count { raw += m.record(i).prefix(elementSize) }
        return raw
    }

    /// Refuses a set holding the same element twice (honest parties deduplicate before blinding);
    /// returns the set's flat hash index (see ``ElementIndex``), which the coordinator probes.
    static func rejectDuplicates(_ batch: ElementBatch, source: String) throws(ActivationError) -> ElementIndex {
        let (index, duplicate) = ElementIndex.build(batch)
        try refuseDuplicate(duplicate, source: source)
        return index
    }

    static func refuseDuplicate(_ duplicate: (first: Int, second: Int)?, source: String) throws(ActivationError) {
        if let (first, second) = duplicate {
            throw ActivationError(.duplicateElement, "\(source): element \(second) duplicates element \(first)")
        }
    }
}

/// A party's per-run secret state, kept in its private state directory between its two steps.
///
/// Layout: `"CLRS" | version u16 | role u8 | collaboration 16 | run 16 | agreement hash 32 |
/// reference 32 | scalar 32`. The scalar is the party's blinding key for this run only.
public final class RunState: Sendable {
    static let magic = Array("CLRS".utf8)
    /// The party whose state this is (checked when the file is read back).
    public let role: Role
    /// The run's UUID bytes.
    public let runUUID: [UInt8]
    let agreementHash: [UInt8]
    /// Body hash of the party's own outgoing set (checked when the answer comes back).
    let reference: [UInt8]
    let scalar: Scalar

    init(role: Role, runUUID: [UInt8], agreementHash: [UInt8], reference: [UInt8], scalar: Scalar) {
        self.role = role
        self.runUUID = runUUID
        self.agreementHash = agreementHash
        self.reference = reference
        self.scalar = scalar
    }

    /// The run ID, as a lowercase UUID string.
    public var runID: String { UUIDBytes.string(runUUID) }

    /// The state file's bytes, in a zeroing buffer.
    public func serialized(collaborationUUID: [UInt8]) -> SecureBytes {
        var head =
            RunState.magic + BE.u16(1) + [role.rawValue] + collaborationUUID + runUUID + agreementHash + reference
        let out = SecureBytes(count: head.count + Scalar.byteCount) { dst in
            head.withUnsafeBytes { dst.copyMemory(from: $0) }
            scalar.withSecretBytes { s in
                UnsafeMutableRawBufferPointer(rebasing: dst[head.count...]).copyMemory(from: s)
            }
        }
        SecureBytes.zero(&head)
        return out
    }

    /// Parses a state file for `role` under `agreement`.
    public init(parsing data: SecureBytes, role expected: Role, agreement: VerifiedAgreement, source: String)
        throws(ActivationError)
    {
        let size = 4 + 2 + 1 + 16 + 16 + 32 + 32 + 32
        let parsed: Result<(Role, [UInt8], [UInt8], [UInt8], Scalar), ActivationError> = data.withUnsafeBytes { b in
            guard b.count == size, Array(b[0..<4]) == RunState.magic, b[4] == 0, b[5] == 1 else {
                return .failure(
                    ActivationError(
                        .stateInvalid, "\(source): not a CleanRoom run state file (corrupted or wrong file)"))
            }
            guard b[6] == expected.rawValue, let role = Role(rawValue: b[6]) else {
                return .failure(ActivationError(.stateInvalid, "\(source): state file belongs to another role"))
            }
            guard Array(b[7..<23]) == agreement.collaborationUUID else {
                return .failure(
                    ActivationError(.stateInvalid, "\(source): state file belongs to another collaboration"))
            }
            let run = Array(b[23..<39])
            let ah = Array(b[39..<71])
            let ref = Array(b[71..<103])
            guard ah == agreement.hash else {
                return .failure(
                    ActivationError(.stateInvalid, "\(source): state file was made under a different agreement"))
            }
            do throws(CryptoError) {
                let s = try Scalar(canonicalBytes: UnsafeRawBufferPointer(rebasing: b[103..<135]))
                return .success((role, run, ah, ref, s))
            } catch {
                return .failure(
                    ActivationError(.stateInvalid, "\(source): the stored scalar is invalid (\(error.code.rawValue))"))
            }
        }
        let (role, run, ah, ref, s) = try parsed.get()
        self.role = role
        self.runUUID = run
        self.agreementHash = ah
        self.reference = ref
        self.scalar = s
    }
}
