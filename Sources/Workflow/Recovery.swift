import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Activation

extension StateStore {
    /// Clears what a party's prepare step left when it was killed before publishing its round:
    /// the run state (shredded: it holds the scalar) and any message only the coordinator reads,
    /// so a retry of the same run ID can start over with a fresh scalar.
    ///
    /// Contract: does nothing unless the state exists and `published` (the message the other
    /// party receives) does not; once that message exists the round is out and a retry is refused
    /// by the exclusive writes, as before. `unpublished` must only name messages that nobody can
    /// use without `published` (round 1' needs round 4, which needs round 1).
    /// - SeeAlso: `Protocol/SPEC.md` §9.2 "Faults".
    func clearAbandonedPrepare(_ a: VerifiedAgreement, run: String, role: Role, published: String, unpublished: [String] = []) {
        let p = path(a, run: run, role: role)
        guard FileManager.default.fileExists(atPath: p), !FileManager.default.fileExists(atPath: published) else { return }
        for u in unpublished { unlink(u) }
        Files.shred(p)
    }
}
