/// The one error type of the system module: a program that could not be started, ran too long or
/// failed, or a name the kernel would refuse. Its text says what failed and what to do next.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The whole sentence, next step included.
    public var message: String
    /// The command that failed, as given (program name first, not its resolved path); empty when the
    /// error is not about a command that ran.
    public var command: [String]
    /// Its exit status (128 + signal when killed); nil when it never ran.
    public var status: Int32?
    /// What it wrote to stderr, then stdout, trimmed (`CommandResult.combined`).
    public var output: String

    public init(_ message: String, command: [String] = [], status: Int32? = nil, output: String = "") {
        self.message = message
        self.command = command
        self.status = status
        self.output = output
    }

    public var description: String { message }

    /// The command as one line (`ip link add br0 type bridge`), for messages.
    public var commandLine: String { command.joined(separator: " ") }
}
