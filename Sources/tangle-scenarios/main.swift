// tangle-scenarios: small real programs that reproduce (or carefully avoid) concurrency bugs, one
// per name, run with TANGLE_TRACE set by `tangle demo`, the end-to-end tests, or by hand:
//
//   tangle-scenarios --list          names and one-line summaries
//   tangle-scenarios NAME            runs one scenario for real (some hang: stop them from outside)
//
// Links only Tangle (no Foundation) so that its children start fast. Every child entry point is
// registered before the bootstrap, which routes spawned children to them.
import Glibc
import Tangle

registerScenarioEntryPoints()
TangleRuntime.bootstrap()
exit(scenariosMain(CommandLine.arguments))
