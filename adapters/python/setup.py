"""Installs tangle_trace.pth next to the package, so TANGLE_TRACE=dir python3 app.py records."""
import os
from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tangle_trace.pth"),
                       os.path.join(self.build_lib, "tangle_trace.pth"))


setup(cmdclass={"build_py": BuildWithPth})
