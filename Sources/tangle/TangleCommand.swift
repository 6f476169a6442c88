import ArgumentParser
import TangleTrace

@main
struct TangleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tangle",
        abstract: "Finds the concurrency bugs of multi-process programs from their traces."
    )
}
