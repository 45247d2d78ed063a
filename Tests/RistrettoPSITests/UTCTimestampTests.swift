import Foundation
import Testing

@testable import RistrettoPSI

/// RFC 3339 §5.6 timestamps without ICU (``UTCTimestamp``), checked against Foundation's
/// `ISO8601DateFormatter` (the implementation it replaces) and against hand-computed instants.
@Suite("UTC timestamps (RFC 3339)")
struct UTCTimestampTests {
    struct Known: Sendable, CustomTestStringConvertible {
        let text: String, epoch: Double
        var testDescription: String { text }
    }

    static let known: [Known] = [
        Known(text: "1970-01-01T00:00:00Z", epoch: 0),
        Known(text: "2026-12-05T06:00:00Z", epoch: 1_796_450_400),
        Known(text: "2000-02-29T23:59:59Z", epoch: 951_868_799),  // leap day of a year divisible by 400
        Known(text: "1969-12-31T23:59:59Z", epoch: -1),
        Known(text: "2026-12-05T08:00:00+02:00", epoch: 1_796_450_400),
        Known(text: "2026-12-04T21:30:00-08:30", epoch: 1_796_450_400),
        Known(text: "2026-12-05T06:00:00.5Z", epoch: 1_796_450_400.5),
        Known(text: "2026-12-05T06:00:00.250000000Z", epoch: 1_796_450_400.25),
        Known(text: "2026-12-05T06:00:00.000001Z", epoch: 1_796_450_400.000001),
        // Beyond the microsecond is dropped, never rounded into the next second.
        Known(text: "2026-12-05T05:59:59.999999999Z", epoch: 1_796_450_399.999999),
        Known(text: "9999-12-31T23:59:59Z", epoch: 253_402_300_799),
    ]

    @Test("known instants", arguments: known)
    func parsesKnown(_ k: Known) throws {
        let d = try #require(UTCTimestamp.parse(k.text))
        #expect(abs(d.timeIntervalSince1970 - k.epoch) < 1e-6)
    }

    static let refused = [
        "", "2026-12-05", "2026-12-05T06:00:00", "2026-12-05 06:00:00Z", "2026-12-05t06:00:00Z", "2026-12-05T06:00:00z",
        "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-12-00T00:00:00Z", "2026-12-05T24:00:00Z", "2026-12-05T06:60:00Z", "2026-12-05T06:00:60Z",
        "2026-12-05T06:00:00.Z", "2026-12-05T06:00:00.1234567890Z", "2026-12-05T06:00:00+24:00",
        "2026-12-05T06:00:00+02",
        "2026-12-05T06:00:00Z ", " 2026-12-05T06:00:00Z", "+2026-12-05T06:00:00Z", "2026-1-05T06:00:00Z",
        "２026-12-05T06:00:00Z",
        "10000-01-01T00:00:00Z",
    ]

    @Test("malformed or impossible timestamps are refused", arguments: refused)
    func refuses(_ text: String) {
        #expect(UTCTimestamp.parse(text) == nil)
    }

    @Test("format agrees with ISO8601DateFormatter and parses back, on 20,000 instants from 1583 to 9999")
    func agreesWithFoundation() throws {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        f.timeZone = TimeZone(identifier: "UTC")
        var state: UInt64 = 0x5eed
        // From 1583: before the Gregorian reform ICU switches to the Julian calendar, whereas
        // RFC 3339 (like ISO 8601) counts proleptic Gregorian days, as ``UTCTimestamp`` does.
        let lo = -12_212_553_600.0
        let hi = 253_402_300_799.0  // 1583-01-01 … 9999-12-31
        for i in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            // Half spread over the whole range, half near today (the instants agreements carry).
            let u = Double(state >> 11) / Double(1 << 53)
            let t = (i % 2 == 0 ? lo + u * (hi - lo) : 1.7e9 + u * 4e8).rounded(.down)
            let d = Date(timeIntervalSince1970: t)
            let text = UTCTimestamp.format(d)
            #expect(text == f.string(from: d), "t = \(t)")
            #expect(UTCTimestamp.parse(text)?.timeIntervalSince1970 == t, "t = \(t)")
        }
    }

    @Test("format truncates to the second and writes years outside 0000–9999 whole, which parse refuses")
    func formatEdges() {
        #expect(UTCTimestamp.parse("2026-12-05T05:59:59.999999999Z").map(UTCTimestamp.format) == "2026-12-05T05:59:59Z")
        #expect(UTCTimestamp.format(Date(timeIntervalSince1970: 1_796_450_400.999)) == "2026-12-05T06:00:00Z")
        #expect(UTCTimestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59Z")
        // Proleptic Gregorian before 1582 (RFC 3339 §5.6 via ISO 8601), not ICU's Julian dates.
        #expect(UTCTimestamp.format(Date(timeIntervalSince1970: -62_135_596_800)) == "0001-01-01T00:00:00Z")
        #expect(UTCTimestamp.parse("0001-01-01T00:00:00Z")?.timeIntervalSince1970 == -62_135_596_800)
        let far = UTCTimestamp.format(Date(timeIntervalSince1970: 253_402_300_800))  // 10000-01-01
        #expect(far == "10000-01-01T00:00:00Z")
        #expect(UTCTimestamp.parse(far) == nil)
    }
}
