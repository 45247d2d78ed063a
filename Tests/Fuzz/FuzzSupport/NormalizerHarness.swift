// The body shared by the four normalizer harnesses (FuzzEmail, FuzzPhone, FuzzMAID, FuzzCustom).
import Identifiers

/// Runs one input through `Normalizer` as `type`.
///
/// The first byte picks the rules (bit 0: the Gmail rule; bits 1–2: no default country calling
/// code, `1`, `44` or `971`), the rest is the raw value, as one CSV field's bytes would be.
/// Invariants checked on every input:
/// - the normalizer returns a match value or an `IdentifierError`, never a crash;
/// - it is deterministic (the same value twice gives the same result);
/// - match values of hashed types are 32-byte digests;
/// - normalization is idempotent: the normalized form, normalized again, has the same match value
///   and the same normalized form.
public func fuzzNormalizer(_ data: [UInt8], as type: IdentifierType) {
    guard let selector = data.first else { return }
    let countryCodes: [String?] = [nil, "1", "44", "971"]
    // Rules built from fixed, valid parameters cannot fail.
    let rules = try! NormalizationRules(
        gmailRule: selector & 1 == 1,
        defaultCountryCallingCode: countryCodes[Int(selector >> 1) & 3])
    let normalizer = Normalizer(rules: rules)
    let raw = data.dropFirst()

    let first: MatchValue
    do { first = try normalizer.matchValue(raw, as: type) } catch {
        do {
            _ = try normalizer.matchValue(raw, as: type)
            invariant(false, "the same value was rejected, then accepted")
        } catch let again {
            invariant(
                again.code == error.code, "the same value was rejected for two rules: \(error.code), \(again.code)")
        }
        return
    }
    let second = try? normalizer.matchValue(raw, as: type)
    invariant(second == first, "the same value gave two match values")
    invariant(first.type == type, "match value of another type")
    if type == .email || type == .phone {
        invariant(first.bytes.count == 32, "a hashed type's match value is not 32 bytes")
    }

    let form: String?
    do { form = try normalizer.normalizedForm(raw, as: type) } catch {
        invariant(false, "matchValue accepted what normalizedForm rejects: \(error.code)")
        return
    }
    guard let form else { return }  // a pre-hashed input has no text form
    do {
        let again = try normalizer.matchValue(form, as: type)
        invariant(again == first, "normalizing the normalized form changes the match value")
        let formAgain = try normalizer.normalizedForm(form, as: type)
        invariant(formAgain == form, "normalization is not idempotent")
    } catch {
        invariant(false, "the normalized form is itself rejected: \(error.code)")
    }
}
