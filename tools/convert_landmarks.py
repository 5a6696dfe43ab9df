"""dlib's 5-point shape predictor -> models/landmarks_5pt.npz, and its checks against dlib.

The converter lives in edgeface.convert.landmarks (install first: pip install -e ".[convert]").
`python tools/convert_landmarks.py --help` lists every option.
"""
import sys

from edgeface.convert.landmarks import main

if __name__ == "__main__":
    sys.exit(main())
