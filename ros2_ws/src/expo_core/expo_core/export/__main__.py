"""``python -m expo_core.export``: a checkpoint or weights bundle to a verified ONNX file."""

import sys

from .onnx_file import main

if __name__ == "__main__":
    sys.exit(main())
