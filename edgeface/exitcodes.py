"""Exit statuses of every `edgeface` command (systemd's Restart=on-failure reads them too)."""

OK = 0
FAIL = 1  # the work could not be done: no face, an unreadable model or gallery, a camera worker died
USAGE = 2  # the command line or the config file is wrong: nothing was started
INTERRUPTED = 130  # Ctrl-C
