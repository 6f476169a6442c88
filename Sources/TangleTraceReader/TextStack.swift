/// One frame of a text-frame stack record: a stack recorded by a runtime that knows its frames by
/// name (the Python adapter), not by return address. See docs/trace-format.md, "Text-frame stacks".
public struct TextFrame: Sendable, Equatable, Hashable {
    public var file: String
    public var line: Int
    public var function: String

    public init(file: String, line: Int, function: String) {
        self.file = file
        self.line = line
        self.function = function
    }

    /// The `frames` array of a stack record; nil when the record has none (an address stack).
    static func frames(of record: JSONValue) -> [TextFrame]? {
        guard case let .array(items)? = record["frames"] else { return nil }
        return items.map { item in
            TextFrame(file: item["file"]?.string ?? "", line: Int(item["line"]?.int64 ?? 0),
                      function: item["function"]?.string ?? "")
        }
    }
}
