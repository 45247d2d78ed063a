import Activation
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension StateStore {
    /// Clears what a party's prepare step left when it was killed before publishing its round:
    /// the run state (shredded: it holds the scalar) and any message only the coordinator reads,
    /// so a retry of the same run ID can start over with a fresh scalar.
    ///
    /// Contract: does nothing unless the state exists and `published` (the message the other
    /// party receives) does not; once that message exists the round is out and a retry is refused
    /// by the exclusive writes, as before (the state is kept for the party's second step).
    /// `unpublished` must only name messages that nobody can use without `published` (round 1'
    /// needs round 4, which needs round 1).
    ///
    /// On an `s3://` exchange the messages are asked for with HeadObject. Nothing is deleted
    /// there and writes never overwrite, so a leftover `unpublished` message makes the run ID
    /// unusable: the abandoned state is shredded and the retry refused with
    /// `workflow.already_exists`, naming the leftover and saying to start a new run ID. An answer
    /// that cannot tell (403 without list permission) is thrown and nothing is cleared.
    /// - SeeAlso: `Protocol/SPEC.md` §9.2 "Faults", §12.7 "Exchanges on S3".
    func clearAbandonedPrepare(
        _ a: VerifiedAgreement, run: String, role: Role, exchange: Exchange,
        published: MessageKind, unpublished: [MessageKind] = []
    ) throws {
        let p = path(a, run: run, role: role)
        guard FileManager.default.fileExists(atPath: p), !(try exchange.exists(a, run: run, published)) else { return }
        if exchange.isS3 {
            for u in unpublished where try exchange.exists(a, run: run, u) {
                Files.shred(p)
                throw WorkflowError(
                    .alreadyExists,
                    "run \(run): a prepare killed before publishing left \(exchange.path(a, run: run, u)); "
                        + "writes to an s3:// exchange never overwrite and this step never deletes there, so this run ID cannot be "
                        + "prepared again: start a new run ID (the abandoned run state was shredded; a lifecycle rule on the "
                        + "exchange prefix removes the leftover)")
            }
        } else {
            for u in unpublished { unlink(exchange.path(a, run: run, u)) }
        }
        Files.shred(p)
    }
}
