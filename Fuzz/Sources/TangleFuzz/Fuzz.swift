import Glibc
import TangleAnalysis

/// libFuzzer's entry point: one input, the whole pipeline (`WholePipeline`). A crash, a trap, a
/// leak or a hang is a bug; the status (0, 1, 2) is not checked beyond being one of those.
nonisolated(unsafe) private var directory: String = {
    var template = Array("/tmp/tangle-fuzz-XXXXXX".utf8CString)
    return String(cString: mkdtemp(&template)!)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func tangleFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let status = WholePipeline.run(UnsafeRawBufferPointer(start: data, count: size), directory: directory)
    if status < 0 || status > 2 { abort() }
    return 0
}
