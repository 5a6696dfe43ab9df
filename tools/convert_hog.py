"""dlib's HOG frontal face detector -> models/hog_frontal.npz, and its check against dlib.

The converter lives in edgeface.convert.hog (install first: pip install -e ".[convert]").
`python tools/convert_hog.py --help` lists every option.
"""
import sys

from edgeface.convert.hog import main

if __name__ == "__main__":
    sys.exit(main())
