import Foundation
import TestSupport
import Testing

@testable import S3Delivery

/// Fails under `make test` when the server is not there, instead of skipping silently.
@Suite struct S3ServerAvailabilityTests {
    @Test func serverIsReachableWhenRequired() throws {
        guard S3Server.required else { return }
        let endpoint = try #require(S3Server.endpoint, "make test must set CLEANROOM_S3_ENDPOINT")
        _ = endpoint
        // One authenticated STS call: the server is up and the admin keys work.
        let body = try S3Server.query(
            service: "sts", action: "GetCallerIdentity", version: "2011-06-15", params: [], creds: S3Server.admin)
        #expect(XMLText.first("Arn", in: body)?.hasPrefix("arn:aws:") == true)
    }
}
