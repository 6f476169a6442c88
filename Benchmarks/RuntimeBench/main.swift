// tangle-runtime-bench: the runtime benchmark's measuring program (links only Tangle, no
// Foundation, so spawn + join costs what an app linking Tangle pays). `tangle bench runtime` runs it
// beside the Python `multiprocessing` peer. Usage: tangle-runtime-bench [--json] [--quick]
import Glibc
import Tangle

RuntimeBench.registerEntryPoints()
if getenv("TANGLE_CHILD") == nil {
    // The orchestrator itself never traces: traced figures come from children started with
    // TANGLE_TRACE set (the recorder reads the variable once, at its first use).
    unsetenv("TANGLE_TRACE")
}
TangleRuntime.bootstrap()
CurrentProcess.exit(RuntimeBench.main(Array(CommandLine.arguments.dropFirst())))
