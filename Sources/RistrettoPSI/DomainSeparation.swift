/// The protocol's domain-separation constants, written once.
///
/// - SeeAlso: `Protocol/SPEC.md` §"Hash-to-group tag"; RFC 9380 §3.1 (tag requirements) and
///   §8.10 (suite identifier `ristretto255_XMD:SHA-512_R255MAP_RO_`).
public enum DomainSeparation {
    /// The protocol name as it appears in every tag.
    public static let protocolName = "CLEANROOM"
    /// The protocol version as it appears in every tag (bumped with any change to hashed bytes).
    public static let protocolVersion = "V01"
    /// RFC 9380 §8.10 suite identifier for hashing to ristretto255.
    public static let hashToGroupSuite = "ristretto255_XMD:SHA-512_R255MAP_RO_"

    /// The hash-to-group tag for one collaboration:
    /// `"CLEANROOM-V01-CS01-with-ristretto255_XMD:SHA-512_R255MAP_RO_" || "COLLAB:" || collaborationID`.
    ///
    /// Binding the collaboration ID means blinded values from one collaboration are unrelated to
    /// those of another even for the same identifiers and keys. IDs long enough to push the tag past
    /// 255 bytes are handled by ``HashToGroup`` per RFC 9380 §5.3.3.
    public static func hashToGroupTag(collaborationID: String) -> [UInt8] {
        Array("\(protocolName)-\(protocolVersion)-CS01-with-\(hashToGroupSuite)COLLAB:\(collaborationID)".utf8)
    }
}
