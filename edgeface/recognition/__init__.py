"""From faces to names: embedder, open-set matching, tracking, the pipeline that wires them, enrolment."""
