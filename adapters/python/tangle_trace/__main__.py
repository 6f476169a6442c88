"""python3 -m tangle_trace [--trace-dir DIR] app.py [args…] — runs app.py traced."""
import os
import runpy
import sys


def main():
    args = sys.argv[1:]
    directory = os.environ.get("TANGLE_TRACE")
    if args[:1] == ["--trace-dir"] and len(args) > 1:
        directory, args = args[1], args[2:]
    if not args or args[0] in ("-h", "--help"):
        print("usage: python3 -m tangle_trace [--trace-dir DIR] app.py [args...]   (default dir: $TANGLE_TRACE or ./tangle-trace)")
        return 2
    directory = os.path.abspath(directory or "tangle-trace")
    # Spawned children start a fresh interpreter: they find the adapter through PYTHONPATH.
    site = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_site")
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join([site, pkg] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    os.environ["TANGLE_TRACE"] = directory
    from . import activate
    activate(directory)
    sys.argv = args
    sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
    runpy.run_path(args[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
