import Foundation

/// Replaces `{service}`, `{from}` and `{to}` in one argument or template of an executor.
public func substitutePlaceholders(_ text: String, service: String, from: String, to: String) -> String {
    text.replacingOccurrences(of: "{service}", with: service)
        .replacingOccurrences(of: "{from}", with: from)
        .replacingOccurrences(of: "{to}", with: to)
}

