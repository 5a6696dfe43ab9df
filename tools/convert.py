"""Convert a pretrained face embedder into a verified full-integer TFLite model.

The converter lives in edgeface.convert (install first: pip install -e ".[convert]");
`edgeface convert` runs the same thing. `python tools/convert.py --help` lists every option.
"""
import sys

from edgeface.convert.cli import main

if __name__ == "__main__":
    sys.exit(main())
