
/// A Tangle object that can be handed to a child process. Its `Codable` form *is* the handle: a
/// child decodes it and gets access to the same underlying object (shared memory by name, or a file
/// descriptor it inherited). Decoding records `handle.attach` in the child's trace.
public protocol ProcessTransferable: Codable {}

/// What a spawn needs beyond the encoded bytes: the file descriptors that must stay open, at the
/// same numbers, in the child. A handle's `encode(to:)` calls `inheritDescriptor`; the spawner
/// wraps the encoding of a child's arguments in `collectingDescriptors`.
///
/// Thread-local, so two threads spawning at once do not mix their children's descriptors.
public enum HandleTransfer {
    private final class Collector {
        var descriptors: [Int32] = []
    }

    @TaskLocal private static var collector: Collector?

    /// Keep `fd` open in the child being spawned. Outside a spawn (plain encoding) it does nothing.
    public static func inheritDescriptor(_ fd: Int32) {
        collector?.descriptors.append(fd)
    }

    /// Runs `body` (which encodes a child's arguments) and returns what it returned together with the
    /// descriptors the encoded handles asked to be inherited, without duplicates, in order.
    public static func collectingDescriptors<T>(_ body: () throws -> T) rethrows -> (T, [Int32]) {
        let box = Collector()
        let value = try $collector.withValue(box) { try body() }
        var seen = Set<Int32>()
        return (value, box.descriptors.filter { seen.insert($0).inserted })
    }
}

/// A raw file descriptor handed to a child at the same number: its `Codable` form is the number,
/// and encoding it during a spawn asks for the descriptor to be inherited. For plumbing of your own
/// (a result pipe, a socket) next to Tangle's typed handles.
public struct InheritedDescriptor: Codable, Sendable, Equatable {
    public var fd: Int32

    public init(_ fd: Int32) { self.fd = fd }

    public init(from decoder: Decoder) throws { fd = try decoder.singleValueContainer().decode(Int32.self) }

    public func encode(to encoder: Encoder) throws {
        HandleTransfer.inheritDescriptor(fd)
        var c = encoder.singleValueContainer()
        try c.encode(fd)
    }
}
