import EdgeMeterSystem

extension TimedTCPConnect {
    /// `run` for a resolved `SocketAddr` (see `TimedTCPConnect` in EdgeMeterSystem).
    static func run(fd: Int32, address: SocketAddr, timeoutNanoseconds: Int64, stop: () -> Bool = { false }) -> Outcome {
        run(fd: fd, storage: address.storage, length: address.length, timeoutNanoseconds: timeoutNanoseconds, stop: stop)
    }
}
