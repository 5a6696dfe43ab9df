import sys

from edgeface.convert.cli import main

sys.exit(main(prog="python -m edgeface.convert"))
