/// The version written into every run.json and printed by `edgemeter --version`.
public enum EdgeMeterVersion {
    public static let current = "0.1.0"
}
