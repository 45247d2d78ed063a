import Foundation

/// RFC 3339 timestamps (UTC) written and read without Foundation's date formatters.
///
/// `ISO8601DateFormatter` runs through ICU: its first use touched ≈ 6 MiB of ICU's calendar and
/// time-zone tables in every process that reads an agreement (each party's round, the coordinator,
/// the provider's open; `BENCHMARKS.md` "Timestamps without ICU"). The format here is fixed, so
/// plain arithmetic on the proleptic Gregorian calendar does the same job.
///
/// It lives in this module only because every other module depends on it (like ``Hex``).
/// - SeeAlso: RFC 3339 §5.6 (`date-time`); `Protocol/SPEC.md` §"Agreement" (`createdAt`,
///   `expiresAt`: ISO 8601 UTC).
public enum UTCTimestamp {
    /// `YYYY-MM-DDTHH:MM:SSZ` for `date`, truncated to the second below it.
    ///
    /// Years outside 0000–9999 are not RFC 3339: they are written with all their digits and sign,
    /// so such a timestamp is visibly wrong and ``parse(_:)`` refuses it.
    public static func format(_ date: Date) -> String {
        let t = Int64(date.timeIntervalSince1970.rounded(.down))
        var days = t / 86_400
        var rem = t % 86_400
        if rem < 0 {
            rem += 86_400
            days -= 1
        }
        let (y, m, d) = civil(fromDays: days)
        var out = [UInt8]()
        out.reserveCapacity(20)
        func put(_ v: Int64, _ width: Int) {
            // A year outside 0000–9999 is written whole (and ``parse(_:)`` refuses it), never cut.
            guard v >= 0, String(v).utf8.count <= width else {
                out += Array(String(v).utf8)
                return
            }
            var digits = [UInt8](repeating: 0x30, count: width)
            var v = v
            for i in stride(from: width - 1, through: 0, by: -1) {
                digits[i] = 0x30 + UInt8(v % 10)
                v /= 10
            }
            out += digits
        }
        put(y, 4)
        out.append(0x2d)
        put(m, 2)
        out.append(0x2d)
        put(d, 2)
        out.append(0x54)
        put(rem / 3600, 2)
        out.append(0x3a)
        put(rem % 3600 / 60, 2)
        out.append(0x3a)
        put(rem % 60, 2)
        out.append(0x5a)
        return String(decoding: out, as: UTF8.self)
    }

    /// The instant an RFC 3339 `date-time` names, or `nil` when `s` is not one.
    ///
    /// Accepts `YYYY-MM-DDTHH:MM:SS`, an optional fraction (`.` and 1–9 digits, kept to the
    /// microsecond), then `Z` or
    /// `±HH:MM`; `T` and `Z` uppercase, as every writer of agreements and AWS responses emits.
    /// Refuses anything else, including impossible dates (`02-30`), hour 24, minute or second 60
    /// (a leap second has no `Date`), offsets beyond ±23:59, and trailing text.
    public static func parse(_ s: String) -> Date? {
        let b = Array(s.utf8)
        var i = 0
        func number(_ width: Int) -> Int64? {
            guard i + width <= b.count else { return nil }
            var v: Int64 = 0
            for k in i..<(i + width) {
                guard b[k] >= 0x30 && b[k] <= 0x39 else { return nil }
                v = v * 10 + Int64(b[k] - 0x30)
            }
            i += width
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let y = number(4), expect(0x2d), let m = number(2), expect(0x2d), let d = number(2), expect(0x54),
            let hh = number(2), expect(0x3a), let mm = number(2), expect(0x3a), let ss = number(2)
        else { return nil }
        guard (1...12).contains(m), d >= 1, d <= daysIn(month: m, year: y), hh <= 23, mm <= 59, ss <= 59 else {
            return nil
        }
        var fraction = 0.0
        if i < b.count, b[i] == 0x2e {
            i += 1
            let start = i
            var micros = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39, i - start < 9 {
                // Microseconds at most: a `Date` near today resolves ≈ 0.2 µs, so finer digits
                // could only round a .999999999 up into the next second.
                if i - start < 6 { micros = micros * 10 + Int(b[i] - 0x30) }
                i += 1
            }
            guard i > start else { return nil }
            for _ in min(6, i - start)..<6 { micros *= 10 }
            fraction = Double(micros) / 1_000_000
        }
        var offset: Int64 = 0
        guard i < b.count else { return nil }
        switch b[i] {
        case 0x5a:
            i += 1
        case 0x2b, 0x2d:
            let sign: Int64 = b[i] == 0x2d ? -1 : 1
            i += 1
            guard let oh = number(2), expect(0x3a), let om = number(2), oh <= 23, om <= 59 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        default:
            return nil
        }
        guard i == b.count else { return nil }
        let seconds = days(fromCivil: y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    static func daysIn(month m: Int64, year y: Int64) -> Int64 {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms": days_from_civil and
    // civil_from_days, exact for the proleptic Gregorian calendar.
    static func days(fromCivil y: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y - 1 : y
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The proleptic Gregorian date `days` after 1970-01-01 (negative: before it); also what the
    /// audit log's millisecond timestamps are written with.
    public static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
