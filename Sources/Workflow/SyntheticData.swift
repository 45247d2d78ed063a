import Foundation
import RistrettoPSI

/// Realistic synthetic lists with a known overlap, for the demo and the tests.
///
/// People are numbered; the provider holds people `0..<providerRows`, the consumer holds
/// `providerRows - overlap ..< providerRows - overlap + consumerRows`. Identifiers appear in mixed
/// forms (case, spacing, phone formats, SHA-256-hashed emails), so matching depends on
/// normalization, and a few consumer rows carry invalid identifiers. The expected delivery is
/// computed from which identifiers each side actually holds.
public struct SyntheticData: Sendable {
    /// The provider's audience CSV: `audience_id,email,phone,mobile_ad_id,interest`.
    public let providerCSV: [UInt8]
    /// The consumer's customer CSV: `member_id,email,phone,loyalty_tier,ads_consent`.
    public let consumerCSV: [UInt8]
    /// Audience keys the provider must receive.
    public let expectedAudienceKeys: Set<String>
    /// Consumer rows carrying an invalid identifier (reported, never matched).
    public let invalidConsumerRows: Int
    /// Consumer rows without ads consent (filtered out by the query).
    public let unconsentedConsumerRows: Int

    static let first = [
        "olivia", "liam", "emma", "noah", "ava", "elijah", "sophia", "mateo", "isabella", "lucas", "mia", "levi",
        "amelia", "ezra", "harper", "luca", "evelyn", "asher", "aria", "james",
    ]
    static let last = [
        "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
        "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin",
    ]
    static let domains = ["gmail.com", "yahoo.com", "outlook.com", "example.com", "mail.example.org", "icloud.com"]

    struct Person {
        let email: String
        let phoneDigits: String  // 10-digit NANP national number
        let maid: String
    }

    static func person(_ i: Int) -> Person {
        let f = first[i % first.count]
        let l = last[(i / first.count) % last.count]
        let email = "\(f).\(l)\(i)@\(domains[i % domains.count])"
        let area = 201 + (i / 10_000) % 700
        let phone = String(format: "%03d555%04d", area, i % 10_000)
        let maid = UUIDText.random()
        return Person(email: email, phoneDigits: phone, maid: maid)
    }

    /// Generates both lists; audience keys and mobile ad IDs are random, so each call differs.
    /// - Parameters:
    ///   - providerRows: the provider list's size.
    ///   - consumerRows: the consumer list's size, before the extra rows with invalid identifiers.
    ///   - overlap: people on both lists; at most both sizes (a precondition).
    public init(providerRows: Int, consumerRows: Int, overlap: Int) {
        precondition(overlap <= providerRows && overlap <= consumerRows)
        let consumerStart = providerRows - overlap
        var people: [Int: Person] = [:]
        func p(_ i: Int) -> Person {
            if let x = people[i] { return x }
            let x = Self.person(i)
            people[i] = x
            return x
        }
        // Which identifier each side holds, per person: deterministic from i so the overlap is known.
        func providerHas(_ i: Int) -> (email: Bool, phone: Bool, maid: Bool) { (i % 10 < 7, i % 2 == 0, i % 5 < 2) }
        func consumerHas(_ i: Int) -> (email: Bool, hashed: Bool, phone: Bool) { (i % 10 != 3, i % 3 == 0, i % 4 < 2) }
        func consented(_ i: Int) -> Bool { i % 17 != 5 }

        var prov = "audience_id,email,phone,mobile_ad_id,interest\n"
        var keys: [Int: String] = [:]
        for i in 0..<providerRows {
            let x = p(i)
            let h = providerHas(i)
            let key = "aud_" + Hex.encode(SecureRandom.bytes(6))
            keys[i] = key
            let email = h.email ? (i % 3 == 0 ? x.email.uppercased() : " \(x.email)") : ""
            let phone =
                h.phone
                ? (i % 4 == 0
                    ? "+1 \(x.phoneDigits)"
                    : "(\(x.phoneDigits.prefix(3))) \(x.phoneDigits.dropFirst(3).prefix(3))-\(x.phoneDigits.suffix(4))")
                : ""
            let maid = h.maid ? (i % 2 == 0 ? x.maid.uppercased() : x.maid) : ""
            prov += "\(key),\"\(email)\",\(phone),\(maid),\(["sports", "travel", "food"][i % 3])\n"
        }

        var cons = "member_id,email,phone,loyalty_tier,ads_consent\n"
        var expected = Set<String>()
        var unconsented = 0
        for n in 0..<consumerRows {
            let i = consumerStart + n
            let x = p(i)
            let h = consumerHas(i)
            let email: String
            if !h.email {
                email = ""
            } else if h.hashed {
                let hex = Hex.encode(SHA256.hash(Array(x.email.lowercased().utf8)))
                email = i % 2 == 0 ? hex.uppercased() : hex
            } else {
                email = x.email.capitalized
            }
            let phone =
                h.phone
                ? "\(x.phoneDigits.prefix(3)).\(x.phoneDigits.dropFirst(3).prefix(3)).\(x.phoneDigits.suffix(4))" : ""
            let consent = consented(i)
            if !consent { unconsented += 1 }
            cons +=
                String(format: "M%07d", i)
                + ",\(email),\(phone),\(i % 2 == 0 ? "gold" : "silver"),\(consent ? "yes" : "no")\n"
            if i < providerRows && consent {
                let ph = providerHas(i)
                if (h.email && ph.email) || (h.phone && ph.phone) { expected.insert(keys[i]!) }
            }
        }
        // Invalid identifiers on extra consumer rows (people nobody else holds): reported, never matched.
        let invalid = max(1, consumerRows / 200)
        let bad = ["not-an-email", "someone@@example.com", "d41d8cd98f00b204e9800998ecf8427e", "name@localhost"]
        for k in 0..<invalid {
            cons += String(format: "X%07d", k) + ",\(bad[k % bad.count]),,gold,yes\n"
        }
        providerCSV = Array(prov.utf8)
        consumerCSV = Array(cons.utf8)
        expectedAudienceKeys = expected
        invalidConsumerRows = invalid
        unconsentedConsumerRows = unconsented
    }
}

/// Random version-4 UUID text.
enum UUIDText {
    static func random() -> String {
        var b = SecureRandom.bytes(16)
        b[6] = (b[6] & 0x0f) | 0x40
        b[8] = (b[8] & 0x3f) | 0x80
        let h = Array(Hex.encode(b))
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-"
            + String(h[20..<32])
    }
}
