import ArgumentParser
import Foundation
import EdgeMeterRun

/// Command plumbing more than one command needs: the output directory of a command that writes
/// its own files, and the controller's bearer token.

/// The directory a command writes its files into: `out`, else `reports/<UTC stamp>-<name>` (the
/// stamp run directories use, e.g. `20261202T041500Z`). Created with its parents here; one that
/// cannot be created is a usage error (exit 2) that asks for a writable `--out`.
func createOutputDirectory(_ out: String?, name: String, now: Date = Date()) throws -> String {
    let dir = out ?? "reports/\(RunDirectory.stamp(now))-\(name)"
    do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
        throw usageError("cannot create \(dir) (\(error)); give a writable --out DIR")
    }
    return dir
}

/// The controller's bearer token: the trimmed text of `file` (`--token-file`), else the
/// environment variable EDGEMETER_CONTROLLER_TOKEN; nil when neither gives one. A file that
/// cannot be read or holds only white space is a `ValidationError` naming it.
func controllerToken(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
    if let file {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ValidationError("--token-file \(file) cannot be read; give a readable file holding the token")
        }
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { throw ValidationError("--token-file \(file) is empty; write the token into it") }
        return t
    }
    return environment["EDGEMETER_CONTROLLER_TOKEN"].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
}
