/// The one error type of the lab module (building, tearing down and using topologies on the host).
/// Its text says what went wrong and what to do next. Topology files that do not validate throw
/// `SuiteErrors` from the loader instead, located by line.
public struct LabError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The request cannot be carried out as asked (unsupported node kind, unknown node, not root):
        /// nothing was changed.
        case refused
        /// A step failed while building; what was built was removed again.
        case stepFailed
        /// `lab up` was stopped (SIGINT/SIGTERM); what was built was removed again.
        case interrupted
        /// Tearing down left something behind (named in the message).
        case teardown
    }

    public var kind: Kind
    /// The whole sentence, next step included.
    public var message: String
    /// The failing command when there is one.
    public var command: [String]
    /// Its stderr (then stdout), trimmed.
    public var output: String

    public init(_ kind: Kind, _ message: String, command: [String] = [], output: String = "") {
        (self.kind, self.message, self.command, self.output) = (kind, message, command, output)
    }

    public var description: String { message }
}
