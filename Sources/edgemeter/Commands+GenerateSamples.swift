import ArgumentParser
import Foundation
import EdgeMeterCore

/// Writes a generated samples.csv (`SampleFixture`) into a new run directory, for benchmarking
/// `edgemeter report` (`benchmarks/peers/report-vs-datamash.sh`) and reproducing its figures.
struct GenerateSamplesCommand: ParsableCommand {
    static let configuration = CommandConfiguration.internal(
        "generate-samples", "Write a generated samples.csv into a directory (benchmark input for `edgemeter report`).",
        discussion: """
        Shapes: ping (ICMP echo rows as `edgemeter ping` writes them, ~1% timeouts, no quoted \
        field) and mixed (every sample shape: ok/timeout/error/refused rows, labels, quoted fields, \
        signed values, several units). The same --shape, --seed and --rows give the same file.

        Examples:
          edgemeter generate-samples --rows 10000000 /tmp/big
          edgemeter report /tmp/big
        """
    )

    @Argument(help: "Directory to create; samples.csv is written in it (it must not hold one).")
    var directory: String

    @Option(name: .long, help: "Number of sample rows.")
    var rows: Int = 1_000_000

    @Option(name: .long, help: "ping or mixed.")
    var shape: String = "ping"

    @Option(name: .long, help: "Seed of the generated values.")
    var seed: UInt64 = 1

    func validate() throws {
        guard rows >= 0 else { throw ValidationError("--rows must be 0 or more, got \(rows)") }
        guard SampleFixture.Shape(rawValue: shape) != nil else {
            throw ValidationError("--shape must be one of \(SampleFixture.Shape.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(shape)\"")
        }
    }

    func run() throws {
        let dir = URL(fileURLWithPath: directory)
        let path = dir.appendingPathComponent("samples.csv").path
        if FileManager.default.fileExists(atPath: path) {
            throw ValidationError("\(path) exists: choose another directory or remove it")
        }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let fixture = SampleFixture(shape: SampleFixture.Shape(rawValue: shape)!, seed: seed, runID: dir.lastPathComponent)
        guard let out = FileHandle(forWritingAtPath: path) ?? {
            FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() else {
            throw ValidationError("cannot create \(path): check the directory's permissions")
        }
        defer { try? out.close() }
        let batch = 10_000
        var i = 0
        while i == 0 || i < rows {
            let upper = min(rows, i + batch)
            try out.write(contentsOf: Data(fixture.csv(i..<upper).utf8))
            i = upper
            if rows == 0 { break }
        }
        note("wrote \(rows) \(shape) samples to \(path)")
    }
}
