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

# Ours shadows any other sitecustomize on the path (a distribution's, a virtualenv's): run it too.
def _chain():
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        path = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("_tangle_chained_sitecustomize", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return


try:
    _chain()
except Exception as e:
    sys.stderr.write("tangle_trace: the other sitecustomize failed: %r\n" % (e,))
