"""Per-frame image work: geometry, decoding, motion, Haar detection, chips, landmarks."""
