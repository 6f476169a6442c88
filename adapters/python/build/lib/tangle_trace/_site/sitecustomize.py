# Put on PYTHONPATH by `tangle run` and `python3 -m tangle_trace`: turns the adapter on in every
# Python process of the program (spawned children included) when TANGLE_TRACE is set.
import os
import sys

if os.environ.get("TANGLE_TRACE"):
    _pkg = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if _pkg not in sys.path:
        sys.path.append(_pkg)
    try:
        import tangle_trace
        tangle_trace.activate()
    except Exception as e:  # never break the program
        sys.stderr.write("tangle_trace: not recording: %r\n" % (e,))
