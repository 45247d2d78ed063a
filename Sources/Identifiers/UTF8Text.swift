/// Byte-level helpers over text already validated as UTF-8.
enum UTF8Text {
    static func isASCIIWhitespace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
    static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
    static func isHexDigit(_ b: UInt8) -> Bool {
        isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
            || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"))
    }
    static func lowercased(_ b: UInt8) -> UInt8 { b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b }

    /// The scalar starting at `i` and its encoded length (the buffer is valid UTF-8).
    static func scalar(in p: UnsafeBufferPointer<UInt8>, at i: Int) -> (Unicode.Scalar, Int) {
        let b0 = UInt32(p[i])
        let value: UInt32
        let length: Int
        switch b0 {
        case ..<0x80:
            value = b0
            length = 1
        case ..<0xE0:
            value = (b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F)
            length = 2
        case ..<0xF0:
            value = (b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F)
            length = 3
        default:
            value =
                (b0 & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6
                | UInt32(p[i + 3] & 0x3F)
            length = 4
        }
        return (Unicode.Scalar(value) ?? "\u{FFFD}", length)
    }

    /// The range left after removing scalars with the Unicode White_Space property from both ends.
    static func trimmedRange(_ p: UnsafeBufferPointer<UInt8>, isASCII: Bool) -> Range<Int> {
        var start = 0
        var end = p.count
        if isASCII {
            while start < end, isASCIIWhitespace(p[start]) { start += 1 }
            while end > start, isASCIIWhitespace(p[end - 1]) { end -= 1 }
            return start..<end
        }
        while start < end {
            let (s, n) = scalar(in: p, at: start)
            guard s.properties.isWhitespace else { break }
            start += n
        }
        while end > start {
            var i = end - 1
            while i > start, p[i] & 0xC0 == 0x80 { i -= 1 }
            guard scalar(in: p, at: i).0.properties.isWhitespace else { break }
            end = i
        }
        return start..<end
    }
}
