/// The one error type of the activation protocol (agreements, messages, roles).
///
/// Equality is by ``code`` only. A reason names the file, row, field and rule; never an
/// identifier, blinded value, key or credential.
/// - SeeAlso: `Protocol/SPEC.md` §10 "Error codes" (the `activation.*` rows).
public struct ActivationError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Stable codes; raw values are listed in `Protocol/SPEC.md`.
    public enum Code: String, Sendable, CaseIterable {
        case agreementMalformed = "activation.agreement.malformed"
        case agreementUnsigned = "activation.agreement.unsigned"
        case agreementSignatureInvalid = "activation.agreement.signature_invalid"
        case agreementExpired = "activation.agreement.expired"
        case agreementIncomplete = "activation.agreement.incomplete"
        case messageMalformed = "activation.message.malformed"
        case messageWrongKind = "activation.message.wrong_kind"
        case messageWrongVersion = "activation.message.wrong_version"
        case messageWrongCollaboration = "activation.message.wrong_collaboration"
        case messageWrongAgreement = "activation.message.wrong_agreement"
        case messageWrongRun = "activation.message.wrong_run"
        case messageSignatureInvalid = "activation.message.signature_invalid"
        case messageChecksumMismatch = "activation.message.checksum_mismatch"
        case messageCountMismatch = "activation.message.count_mismatch"
        case messageReferenceMismatch = "activation.message.reference_mismatch"
        case messageTooLarge = "activation.message.too_large"
        case emptySet = "activation.message.empty_set"
        case duplicateElement = "activation.duplicate_element"
        case invalidElement = "activation.invalid_element"
        case invalidInput = "activation.invalid_input"
        case belowMinimumConsumerRows = "activation.privacy.min_consumer_rows"
        case belowThreshold = "activation.privacy.below_threshold"
        case runLimitReached = "activation.privacy.run_limit"
        case nearDuplicateRun = "activation.privacy.near_duplicate"
        case privacyBudgetExhausted = "activation.privacy.budget_exhausted"
        case runInProgress = "activation.run_in_progress"
        case runAlreadyUsed = "activation.run_already_used"
        case stateInvalid = "activation.state.invalid"
        case deliveryInvalid = "activation.delivery.invalid"
        case cryptoFailure = "activation.crypto_failure"
    }

    /// The stable code: the only part equality and hashing use.
    public let code: Code
    /// Where and which rule; never the rejected value.
    public let reason: String

    /// An error for `code`. `reason` must not contain an identifier, blinded value, key or credential.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    /// The code's raw value, then the reason.
    public var description: String { "\(code.rawValue): \(reason)" }
    /// Equal when the codes are, whatever the reasons, so a test can match a thrown error by code.
    public static func == (a: ActivationError, b: ActivationError) -> Bool { a.code == b.code }
    /// Hashes the code only, consistent with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
