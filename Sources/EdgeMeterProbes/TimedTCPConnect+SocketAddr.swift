import EdgeMeterCore
import EdgeMeterSystem

extension TimedTCPConnect {
    /// `run` for a resolved `SocketAddr` (see `TimedTCPConnect` in EdgeMeterSystem).
    static func run(fd: Int32, address: SocketAddr, timeoutNanoseconds: Int64, clock: any MeasurementClock = SystemClock(),
                    stop: () -> Bool = { false }, poll pollOne: PollOne = systemPoll) -> Outcome {
        run(fd: fd, storage: address.storage, length: address.length, timeoutNanoseconds: timeoutNanoseconds, clock: clock,
            stop: stop, poll: pollOne)
    }
}
