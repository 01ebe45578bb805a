"""Kept so that ``python -m model_runtime.openai_server`` keeps working: the server is
:mod:`model_runtime.backends.openai_server`."""

import sys

from model_runtime.backends.openai_server import main

if __name__ == "__main__":
    sys.exit(main())
