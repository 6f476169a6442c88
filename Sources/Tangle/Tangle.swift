@_exported import TangleTrace
