import Foundation
@testable import EdgeMeterController

extension MigrationReport {
    /// One line per phase and rollback step, for test output.
    var lines: String {
        var out = "\(executor) \(service) \(from) → \(to): \(outcome.rawValue), \(String(format: "%.1f", totalMilliseconds)) ms\n"
        for s in phases + rollback {
            out += "  \(s.name) \(String(format: "%.3f", s.milliseconds)) ms \(s.outcome.rawValue) (\(s.detail ?? ""))\n"
        }
        return out
    }
}
