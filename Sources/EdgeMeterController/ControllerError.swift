import Foundation

/// The module's one error type: a bad API request, a bad option, a store that cannot be opened,
/// or a migration that failed. The description says what was wrong and what to do next.
public struct ControllerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// The HTTP status the API answers with (400 bad request, 401, 404 unknown service or node,
    /// 409 conflict, 500 store or executor failure).
    public var status: Int
    /// The request field that was wrong (`delays[2].p90_ms`), nil when no single field is.
    public var field: String?
    /// For a failed migration: what the executor did and undid before it gave up.
    public var migration: MigrationReport?

    public init(_ description: String, status: Int = 400, field: String? = nil, migration: MigrationReport? = nil) {
        self.description = description
        self.status = status
        self.field = field
        self.migration = migration
    }
}
