import Foundation
import RistrettoPSI
import Identifiers

/// Normalization of a party's rows into deduplicated hash-to-group messages, shared by both parties.
struct RowIdentifiers {
    /// Distinct messages in first-seen order, with the index of the first row that carried each.
    var messages: [[UInt8]] = []
    var rowOfMessage: [Int] = []
    var summary = PrepareSummary()
    var skipped: [SkippedValue] = []

    /// - Parameter selected: indices of the rows to use (after filters).
    init(source: String, rows: [InputRow], selected: [Int], columns: [IdentifierColumn], agreement: VerifiedAgreement,
         policy: InvalidValuePolicy) throws(ActivationError) {
        let normalizer = Normalizer(rules: agreement.rules)
        let allowed = Set(agreement.identifierTypes)
        for c in columns where !allowed.contains(c.type) {
            throw ActivationError(.invalidInput, "\(source): column '\(c.name)' holds \(c.type.rawValue) identifiers, which the agreement does not match")
        }
        var firstRow = [[UInt8]: Int]()
        for r in selected {
            let row = rows[r]
            var any = false
            for c in columns {
                guard c.index < row.fieldCount else {
                    throw ActivationError(.invalidInput, "\(source) row \(row.row): missing column '\(c.name)'")
                }
                let raw = row.field(c.index)
                if raw.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue } // an absent identifier is not an error
                do {
                    let message = try normalizer.matchValue(raw, as: c.type).hashToGroupMessage
                    any = true
                    summary.identifiers += 1
                    if firstRow[message] == nil {
                        firstRow[message] = r
                        messages.append(message)
                        rowOfMessage.append(r)
                    } else {
                        summary.duplicateIdentifiers += 1
                    }
                } catch {
                    switch policy {
                    case .reject:
                        throw ActivationError(.invalidInput, "\(source) row \(row.row), column '\(c.name)': \(error.code.rawValue): \(error.reason)")
                    case .skipAndReport:
                        summary.skippedValues += 1
                        skipped.append(SkippedValue(row: row.row, column: c.name, code: error.code.rawValue))
                    }
                }
            }
            if !any { summary.rowsWithoutIdentifier += 1 }
        }
        summary.elements = messages.count
        // An empty set would only fail later, at the other party or the coordinator; a set above
        // the agreed size would be refused there too. Refuse both here, before anything is written.
        guard !messages.isEmpty else {
            throw ActivationError(.invalidInput, "\(source): no identifiers to send (\(selected.count) rows selected, \(summary.skippedValues) values skipped as invalid, \(summary.rowsWithoutIdentifier) rows without an identifier\(skipped.first.map { "; first skipped: \($0)" } ?? ""))")
        }
        if let max = agreement.terms.matching.maxSetSize, messages.count > max {
            throw ActivationError(.invalidInput, "\(source): \(messages.count) distinct identifiers, the agreement allows at most \(max) per set (matching.maxSetSize)")
        }
    }
}

/// A party's long-term identity: its Ed25519 signing key and X25519 sealing key.
public struct PartyIdentity: Sendable {
    public let signingKey: SigningKey
    public let sealingKey: SealingKey
    public init(signingKey: SigningKey, sealingKey: SealingKey) { self.signingKey = signingKey; self.sealingKey = sealingKey }
    public static func generate() -> PartyIdentity { PartyIdentity(signingKey: .generate(), sealingKey: .generate()) }
}

/// The provider (media network): blinds its audience, re-blinds the consumer's set, opens deliveries.
///
/// Does no I/O: inputs are rows and parsed messages, outputs are messages and state.
/// - SeeAlso: `Protocol/SPEC.md` §6 rounds 1, 3 and 6.
public struct Provider: Sendable {
    public let agreement: VerifiedAgreement
    let identity: PartyIdentity

    public init(agreement: VerifiedAgreement, identity: PartyIdentity) throws(ActivationError) {
        guard identity.signingKey.verifyingKey == agreement.providerKey else {
            throw ActivationError(.agreementSignatureInvalid, "this identity is not the provider named in the agreement")
        }
        guard identity.sealingKey.publicKey == agreement.providerSealingKey else {
            throw ActivationError(.agreementSignatureInvalid, "this sealing key is not the provider's key in the agreement")
        }
        self.agreement = agreement
        self.identity = identity
    }

    public struct Prepared: Sendable {
        public let forConsumer: ProviderBlindedSet
        public let forCoordinator: ProviderPayload
        public let state: RunState
        public let summary: PrepareSummary
        public let skipped: [SkippedValue]
    }

    /// Round 1: normalize, hash, blind with a fresh `b`, shuffle; payloads in the same order.
    ///
    /// Takes the audience by value and lets its rows go once each element's audience key is copied
    /// out (into one flat buffer), so the rows and the payload records are never held together
    /// (SPEC §9 "Bounded memory").
    public func prepare(runID: String, audience: consuming ProviderAudience, scalar: Scalar = .random(),
                        permutation: [Int]? = nil) throws(ActivationError) -> Prepared {
        guard let run = UUIDBytes.parse(runID) else { throw ActivationError(.invalidInput, "run ID is not a lowercase UUID") }
        let source = audience.source, keyColumn = audience.audienceKeyColumn
        let identifierColumns = audience.identifierColumns, invalidValues = audience.invalidValues
        var rows = (consume audience).rows
        var ids = try RowIdentifiers(source: source, rows: rows, selected: Array(rows.indices),
                                     columns: identifierColumns, agreement: agreement, policy: invalidValues)
        ids.summary.rowsRead = rows.count
        ids.summary.rowsSelected = rows.count
        // Each element's audience key, in element order, back to back.
        var keys = FlatFields()
        for r in ids.rowOfMessage {
            let row = rows[r]
            guard keyColumn.index < row.fieldCount else {
                throw ActivationError(.invalidInput, "\(source) row \(row.row): missing column '\(keyColumn.name)'")
            }
            let key = row.field(keyColumn.index)
            guard !key.isEmpty, key.count <= Layout.maxAudienceKey else {
                throw ActivationError(.invalidInput, "\(source) row \(row.row), column '\(keyColumn.name)': the audience key must be 1...\(Layout.maxAudienceKey) bytes")
            }
            keys.append(key)
        }
        rows = []
        FreedMemory.release()
        var blinded = try Self.blind(&ids, scalar: scalar, agreement: agreement)
        let perm = permutation ?? Shuffle.permutation(blinded.count)
        blinded.apply(permutation: perm)
        // The element bytes become the message body; the batch is not kept beside it.
        let body = blinded.withUnsafeBytes { Array($0) }
        blinded = ElementBatch()

        let sealer: RecordSealer?
        if agreement.terms.output.sealed {
            do { sealer = try RecordSealer(recipient: agreement.providerSealingKey, context: Layout.payloadContext(agreement, run)) } catch {
                throw ActivationError(.cryptoFailure, "sealing set-up failed: \(error.code.rawValue)")
            }
        } else { sealer = nil }
        var payload = [UInt8]()
        payload.reserveCapacity(perm.count * Layout.payloadRecordSize(agreement))
        for j in perm {
            let r = ids.rowOfMessage[j]
            let padded = Layout.padded(Array(keys[j]), to: Layout.maxAudienceKey)
            payload += BE.u64(UInt64(r)) + (sealer.map { $0.seal(padded) } ?? padded)
        }
        let m1 = SignedMessage(kind: .providerBlinded, agreement: agreement, runUUID: run, recordSize: Layout.elementSize,
                               body: body, signer: identity.signingKey)
        let m2 = SignedMessage(kind: .providerPayload, agreement: agreement, runUUID: run,
                               recordSize: Layout.payloadRecordSize(agreement), body: payload, reference: m1.bodyHash,
                               sealingKey: sealer?.ephemeralPublicKey, signer: identity.signingKey)
        let state = RunState(role: .provider, runUUID: run, agreementHash: agreement.hash, reference: m1.bodyHash, scalar: scalar)
        return Prepared(forConsumer: ProviderBlindedSet(m1), forCoordinator: ProviderPayload(m2), state: state,
                        summary: ids.summary, skipped: ids.skipped)
    }

    /// Hashes and blinds the normalized messages, releasing them (and the unblinded hashes) as
    /// soon as they are used, so a large input never holds messages, hashes and blinded elements at
    /// once (SPEC §9 "Bounded memory").
    static func blind(_ ids: inout RowIdentifiers, scalar: Scalar, agreement: VerifiedAgreement) throws(ActivationError) -> ElementBatch {
        do {
            var hashed = try agreement.hasher.hash(ids.messages)
            ids.messages = []
            let blinded = try hashed.multiplied(by: scalar)
            hashed = ElementBatch()
            FreedMemory.release()
            return blinded
        } catch {
            throw ActivationError(.cryptoFailure, "blinding failed: \(error.code.rawValue)")
        }
    }

    /// Round 3: strictly decode the consumer's set, refuse duplicates, re-blind with `b`, shuffle
    /// again (sealed attributes move with their element).
    ///
    /// Takes the set by value: the answer is built in the verified input's buffer (each record's
    /// element is replaced, then the records are permuted in place), so a round over a large set
    /// holds one copy of it, not two (SPEC §9 "Bounded memory").
    public func respond(to consumerSet: consuming ConsumerBlindedSet, state: RunState, permutation: [Int]? = nil) throws(ActivationError) -> ConsumerReblindedSet {
        var m = (consume consumerSet).message
        guard m.runUUID == state.runUUID else { throw ActivationError(.messageWrongRun, "consumer set belongs to another run than this state") }
        let source = "consumer-blinded"
        let reblinded = try Layout.reblinded(m, by: state.scalar, source: source)
        let perm = permutation ?? Shuffle.permutation(m.count)
        precondition(perm.count == m.count, "permutation size must equal the set size")
        let recordSize = m.recordSize
        var body = m.takeBody()
        body.withUnsafeMutableBytes { dst in
            reblinded.withUnsafeBytes { src in
                for i in 0..<perm.count {
                    (dst.baseAddress! + i * recordSize).copyMemory(from: src.baseAddress! + i * Layout.elementSize, byteCount: Layout.elementSize)
                }
            }
            Layout.permuteRecords(dst, recordSize: recordSize, perm)
        }
        let out = SignedMessage(kind: .consumerReblinded, agreement: agreement, runUUID: m.runUUID, recordSize: recordSize,
                                body: body, reference: m.bodyHash, sealingKey: try? SealingPublicKey(bytes: m.sealingKey),
                                metadata: m.metadata, signer: identity.signingKey)
        return ConsumerReblindedSet(out)
    }

    /// Round 6: verify a delivery's manifest and objects, and open the sealed records.
    public func open(_ delivery: ReceivedDelivery) throws(ActivationError) -> [DeliveredRecord] {
        try delivery.open(agreement: agreement, provider: identity.sealingKey)
    }

    /// Round 6, streamed: verify the delivery object by object and write the opened records to
    /// `output` as ``ReceivedDelivery/plainCSV(_:)`` would, in bounded memory. The caller makes
    /// `output` visible only when this returns. Returns the number of records.
    /// - Throws: `activation.delivery.invalid`, or what the delivery's fetch or `output` throws.
    public func open(_ delivery: ReceivedDelivery, into output: any OutputSink) throws -> Int {
        try delivery.open(agreement: agreement, provider: identity.sealingKey, into: output)
    }
}

/// The consumer (retailer): runs the activation query, re-blinds the provider's set.
///
/// Does no I/O. - SeeAlso: `Protocol/SPEC.md` §6 rounds 2 and 4.
public struct Consumer: Sendable {
    public let agreement: VerifiedAgreement
    let signingKey: SigningKey

    public init(agreement: VerifiedAgreement, signingKey: SigningKey) throws(ActivationError) {
        guard signingKey.verifyingKey == agreement.consumerKey else {
            throw ActivationError(.agreementSignatureInvalid, "this identity is not the consumer named in the agreement")
        }
        self.agreement = agreement
        self.signingKey = signingKey
    }

    public struct Prepared: Sendable {
        public let forProvider: ConsumerBlindedSet
        public let state: RunState
        public let summary: PrepareSummary
        public let skipped: [SkippedValue]
    }

    static let truthy: Set<String> = ["true", "yes", "y", "1"]

    /// Round 2: select rows (segment filters, consent), normalize, hash, blind with a fresh `a`,
    /// shuffle; attach doubly sealed member IDs when the agreement delivers them.
    public func prepare(runID: String, query: consuming ConsumerQuery, scalar: Scalar = .random(), permutation: [Int]? = nil) throws(ActivationError) -> Prepared {
        guard let run = UUIDBytes.parse(runID) else { throw ActivationError(.invalidInput, "run ID is not a lowercase UUID") }
        let source = query.source, filters = query.filters, consentColumns = query.consentColumns
        let memberIDColumn = query.memberIDColumn, segmentID = query.segmentID, segmentName = query.segmentName
        let identifierColumns = query.identifierColumns, invalidValues = query.invalidValues
        var rows = (consume query).rows
        guard Self.isSafeLabel(segmentID), Self.isSafeLabel(segmentName) else {
            throw ActivationError(.invalidInput, "segment ID and name must be 1...64 printable characters without commas or quotes")
        }
        let deliverMember = agreement.terms.output.deliverMemberID
        if deliverMember && memberIDColumn == nil {
            throw ActivationError(.invalidInput, "the agreement delivers member IDs: name the member ID column")
        }
        var selected = [Int]()
        var filteredOut = 0
        for (i, row) in rows.enumerated() {
            var keep = true
            for f in filters {
                guard f.index < row.fieldCount else { throw ActivationError(.invalidInput, "\(source) row \(row.row): missing column '\(f.name)'") }
                if !f.values.contains(Self.trimmed(row.field(f.index))) { keep = false }
            }
            for c in consentColumns {
                guard c.index < row.fieldCount else { throw ActivationError(.invalidInput, "\(source) row \(row.row): missing column '\(c.name)'") }
                let v = String(decoding: Self.trimmed(row.field(c.index)), as: UTF8.self).lowercased()
                if !Self.truthy.contains(v) { keep = false }
            }
            if keep { selected.append(i) } else { filteredOut += 1 }
        }
        var ids = try RowIdentifiers(source: source, rows: rows, selected: selected,
                                     columns: identifierColumns, agreement: agreement, policy: invalidValues)
        ids.summary.rowsRead = rows.count
        ids.summary.rowsSelected = selected.count
        ids.summary.rowsFilteredOut = filteredOut
        // Each element's member ID, in element order, copied out so the rows can go before the
        // body is built (SPEC §9 "Bounded memory").
        var members = FlatFields()
        if deliverMember, let col = memberIDColumn {
            for r in ids.rowOfMessage {
                let row = rows[r]
                guard col.index < row.fieldCount else { throw ActivationError(.invalidInput, "\(source) row \(row.row): missing column '\(col.name)'") }
                let member = row.field(col.index)
                guard !member.isEmpty, member.count <= Layout.maxMemberID else {
                    throw ActivationError(.invalidInput, "\(source) row \(row.row), column '\(col.name)': the member ID must be 1...\(Layout.maxMemberID) bytes")
                }
                members.append(member)
            }
        }
        rows = []
        FreedMemory.release()
        let blinded = try Provider.blind(&ids, scalar: scalar, agreement: agreement)
        let perm = permutation ?? Shuffle.permutation(blinded.count)
        var body = [UInt8]()
        body.reserveCapacity(perm.count * Layout.consumerRecordSize(agreement))
        var outerKey: SealingPublicKey?
        var metadata = ["segmentID": segmentID, "segmentName": segmentName, "consumerRows": String(selected.count)]
        if deliverMember {
            let inner: RecordSealer, outer: RecordSealer
            do {
                inner = try RecordSealer(recipient: agreement.providerSealingKey, context: Layout.innerContext(agreement, run))
                outer = try RecordSealer(recipient: agreement.coordinatorSealingKey, context: Layout.outerContext(agreement, run))
            } catch { throw ActivationError(.cryptoFailure, "sealing set-up failed: \(error.code.rawValue)") }
            outerKey = outer.ephemeralPublicKey
            metadata["innerSealingKey"] = inner.ephemeralPublicKey.hex
            for j in perm {
                blinded[j].withUnsafeBytes { body += $0 }
                body += outer.seal(inner.seal(Layout.padded(Array(members[j]), to: Layout.maxMemberID)))
            }
        } else {
            for j in perm { blinded[j].withUnsafeBytes { body += $0 } }
        }
        let m = SignedMessage(kind: .consumerBlinded, agreement: agreement, runUUID: run, recordSize: Layout.consumerRecordSize(agreement),
                              body: body, sealingKey: outerKey, metadata: metadata, signer: signingKey)
        let state = RunState(role: .consumer, runUUID: run, agreementHash: agreement.hash, reference: m.bodyHash, scalar: scalar)
        return Prepared(forProvider: ConsumerBlindedSet(m), state: state, summary: ids.summary, skipped: ids.skipped)
    }

    /// Round 4: strictly decode the provider's set, refuse duplicates, re-blind with `a`, keep order.
    public func respond(to providerSet: ProviderBlindedSet, state: RunState) throws(ActivationError) -> ProviderReblindedSet {
        let m = providerSet.message
        guard m.runUUID == state.runUUID else { throw ActivationError(.messageWrongRun, "provider set belongs to another run than this state") }
        let source = "provider-blinded"
        let reblinded = try Layout.reblinded(m, by: state.scalar, source: source)
        let out = SignedMessage(kind: .providerReblinded, agreement: agreement, runUUID: m.runUUID, recordSize: Layout.elementSize,
                                body: reblinded.withUnsafeBytes { Array($0) }, reference: m.bodyHash, signer: signingKey)
        return ProviderReblindedSet(out)
    }

    static func trimmed(_ b: ArraySlice<UInt8>) -> [UInt8] {
        var s = b[...]
        while let f = s.first, f == 0x20 || f == 0x09 { s = s.dropFirst() }
        while let l = s.last, l == 0x20 || l == 0x09 { s = s.dropLast() }
        return Array(s)
    }

    /// Segment labels reach the provider's files and the audit of counts, so they are kept to
    /// plain labels that cannot carry a CSV injection or a list of people.
    static func isSafeLabel(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0 != "," && $0 != "\"" && $0.value != 0x7f }
            && !"=+-@".contains(s.first!)
    }
}

/// Variable-length byte strings back to back in one buffer (one allocation for a million of
/// them, instead of one each).
struct FlatFields {
    private var bytes: [UInt8] = []
    private var ends: [Int] = []
    var count: Int { ends.count }
    mutating func append(_ b: ArraySlice<UInt8>) { bytes += b; ends.append(bytes.count) }
    subscript(i: Int) -> ArraySlice<UInt8> { bytes[(i == 0 ? 0 : ends[i - 1])..<ends[i]] }
}

/// Returns memory freed by the many small allocations of a round's early stages (rows, normalized
/// messages) to the system. Why: glibc keeps freed small chunks resident in its heap, and the
/// round's next large buffer (the message body) is a fresh mapping that cannot reuse them, so
/// without this the peak is the sum of both stages, not the larger one (SPEC §9 "Bounded memory").
enum FreedMemory {
    /// glibc's `malloc_trim` (in `<malloc.h>`, which the Glibc module does not export), looked up
    /// once; absent on other C libraries, where this is a no-op.
    private static let trim: (@convention(c) (Int) -> Int32)? = {
        guard let handle = dlopen(nil, RTLD_NOW), let f = dlsym(handle, "malloc_trim") else { return nil }
        return unsafeBitCast(f, to: (@convention(c) (Int) -> Int32).self)
    }()

    static func release() { _ = trim?(0) }
}

/// Uniform permutations from libsodium's CSPRNG.
enum Shuffle {
    static func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, SecureRandom.index(below: i + 1)) } }
        return p
    }
}
