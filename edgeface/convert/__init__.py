"""Model conversion: dlib's ResNet face descriptor (or a Keras embedder) -> verified int8 TFLite,
and dlib's 5-point shape predictor -> models/landmarks_5pt.npz.

Only the `convert` extra needs TensorFlow and dlib, and only the functions that use them import
them, so importing this package (or edgeface itself) never loads either.

Entry points: ``python tools/convert.py`` / ``edgeface convert`` (edgeface.convert.cli) and
``python tools/convert_landmarks.py`` (edgeface.convert.landmarks).
"""
