"""The daemon: threads, signals, lifecycle, camera sources, systemd notify."""
