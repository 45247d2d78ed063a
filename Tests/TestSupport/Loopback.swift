import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Listening sockets on 127.0.0.1 for the tests' own servers (``FaultProxy``, the HTTP client's
/// loopback server): never another interface.
public enum Loopback {
    /// A TCP socket bound to 127.0.0.1 on a free port the kernel picks, already listening.
    /// - Parameter backlog: `listen`'s queue length.
    /// - Returns: the socket (the caller closes it) and its port.
    /// - Throws: `POSIXError` with the failing call's `errno` when no socket can be made, bound or
    ///   put to listen.
    public static func listen(backlog: Int32) throws -> (socket: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let code = POSIXErrorCode(rawValue: errno) ?? .EIO
            close(fd)
            throw POSIXError(code)
        }
        var name = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &name) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, UInt16(bigEndian: name.sin_port))
    }
}
