import RistrettoPSI

extension SignedManifest {
    /// Whether the manifest carries `key`'s signature over its signed bytes: lets a coordinator
    /// that retries a crashed run recognise a delivery it had already committed.
    /// - SeeAlso: `Protocol/SPEC.md` §9.2 "Faults".
    public func isSigned(by key: VerifyingKey) -> Bool {
        guard let sig = Hex.decode(signature) else { return false }
        return key.isValidSignature(sig, for: SignedManifest.signedBytes(manifest))
    }
}
