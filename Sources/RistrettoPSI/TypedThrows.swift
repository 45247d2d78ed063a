/// `Array.withUnsafeBytes` is `rethrows` (untyped); these keep `CryptoError` typed through it.
extension Array where Element == UInt8 {
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(CryptoError) -> R) throws(CryptoError) -> R {
        let r: Result<R, CryptoError> = withUnsafeBytes { raw in Result { () throws(CryptoError) in try body(raw) } }
        return try r.get()
    }
}
