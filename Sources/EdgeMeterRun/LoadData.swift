import Foundation
import EdgeMeterCore

/// The run directory's `load-histograms.json` (`LoadHistogramsDocument`): each load scenario adds
/// its record when it ends (scenarios run one after the other, so read-modify-write is safe).
public enum LoadData {
    /// Adds `record` to `directory`'s load-histograms.json (replacing a record of the same
    /// scenario and target), written atomically.
    public static func add(_ record: LoadRecord, in directory: URL) throws {
        let url = directory.appendingPathComponent(LoadHistogramsDocument.fileName)
        var doc = LoadHistogramsDocument()
        if let data = try? Data(contentsOf: url) {
            doc = try LoadHistogramsDocument.parse(data, file: url.path)
        }
        do {
            try doc.adding(record).json().write(to: url, atomically: true, encoding: .utf8)
        } catch {
            throw RunError.setup("cannot write \(url.path): \(error.localizedDescription); free space or choose another --out")
        }
    }

    /// The load records of a run directory; empty when it has no load-histograms.json.
    public static func read(_ directory: URL) throws -> [LoadRecord] {
        let url = directory.appendingPathComponent(LoadHistogramsDocument.fileName)
        guard let data = try? Data(contentsOf: url) else { return [] }
        return try LoadHistogramsDocument.parse(data, file: url.path).loads
    }
}
