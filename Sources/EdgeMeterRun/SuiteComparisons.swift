import Foundation
import EdgeMeterCore

/// The suite's `compare:` section at run time: a sink in front of the run's sink keeps the samples
/// of the scenarios the comparisons name (and only those); when the suite ends, each comparison's
/// B-vs-A results are written as `compare-<name>.csv` into the run directory (report.html and
/// report.md render every `compare*.csv` as a table) and as summary.md's "Comparisons" section.
final class ComparisonSink: SampleSink, @unchecked Sendable {
    let next: SampleSink
    private let lock = NSLock()
    private var data: [SuiteComparisonData]
    private let names: Set<String>

    init(_ next: SampleSink, comparisons: [SuiteComparison]) {
        self.next = next
        data = comparisons.map(SuiteComparisonData.init)
        names = Set(comparisons.flatMap { $0.groups.map(\.scenario) })
    }

    func record(_ sample: Sample) {
        if names.contains(sample.scenario) {
            lock.lock()
            for i in data.indices { data[i].add(sample) }
            lock.unlock()
        }
        next.record(sample)
    }

    /// Computes every comparison, writes its CSV and the section; returns one line per pair for
    /// the terminal ("startup: startup-lxc vs startup-docker: 3 better, 1 no significant change").
    @discardableResult
    func finish(in dir: RunDirectory, progress: @Sendable (String) -> Void) -> [String] {
        let all = lock.withLock { data }
        guard !all.isEmpty else { return [] }
        var results: [(SuiteComparison, [CompareResult], [String])] = []
        var lines: [String] = []
        for d in all {
            let (pairs, missing) = d.results()
            results.append((d.comparison, pairs, missing))
            let file = dir.url.appendingPathComponent(d.comparison.fileName)
            do {
                try SuiteCompareRender.csv(pairs).write(to: file, atomically: true, encoding: .utf8)
            } catch {
                progress("compare \(d.comparison.name): cannot write \(file.path): \(error.localizedDescription)")
            }
            for r in pairs { lines.append("\(d.comparison.name): \(r.labelB) vs \(r.labelA): \(SuiteCompareRender.tally(r))") }
            if !missing.isEmpty { lines.append("\(d.comparison.name): not compared (no samples): \(missing.joined(separator: ", "))") }
        }
        dir.addSection(SuiteCompareRender.markdown(results))
        for l in lines { progress("compare \(l)") }
        return lines
    }
}
