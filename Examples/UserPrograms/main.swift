// tangle-examples: small programs written the way an app would use Tangle, each with one of the
// bugs the analyzer once misread (issue "Every wait understood"). They are not the demo's
// scenarios: the end-to-end tests run them under `tangle run` and check what the report says.
//
//   tangle-examples NAME      runs one program (some hang: run them under `tangle run --timeout`)
//   tangle-examples --list
import Glibc
import Tangle

registerExampleEntryPoints()
TangleRuntime.bootstrap()

let args = Array(CommandLine.arguments.dropFirst())
if args.first == "--list" || args.isEmpty {
    for (name, summary, _) in programs { print("\(name): \(summary)") }
    exit(args.isEmpty ? 2 : 0)
}
guard let program = programs.first(where: { $0.0 == args[0] }) else {
    print("tangle-examples: unknown program \(args[0]) (try --list)")
    exit(2)
}
do {
    try program.2()
} catch {
    print("tangle-examples: \(program.0) failed: \(error)")
    exit(1)
}
