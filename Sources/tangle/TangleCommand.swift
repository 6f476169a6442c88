import ArgumentParser
import Foundation
import TangleAnalysis

@main
struct TangleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tangle",
        abstract: "Finds the concurrency bugs of multi-process programs from their traces.",
        version: "tangle \(Exporter.toolVersion)",
        // One verb per line; each helper adds its own.
        subcommands: [
            Cat.self,
            Check.self, BaselineCommand.self, Run.self, Watch.self,
            Confirm.self,
            Analyze.self,
            Stats.self,
            Bench.self,
            Demo.self,
        ]
    )

    /// Exit statuses: 0 success, 2 unusable input or arguments (message on stderr).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                let message = fullMessage(for: error)
                FileHandle.standardError.write(Data((message + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// `tangle bench …`: one subcommand per benchmark (record: the trace helper; runtime, analyze: others).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (release builds only give meaningful figures).",
        subcommands: [
            BenchRecord.self,
            BenchAnalyze.self,
            BenchRuntime.self,
            BenchPredict.self,
        ]
    )
}

/// Prints `message` on stderr prefixed with "tangle: " and exits with status 2.
func failUnusable(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data(("tangle: " + message + "\n").utf8))
    return ExitCode(2)
}
