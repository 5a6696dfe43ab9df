"""What lives on the device's disk: the gallery (SQLite) and the event crops."""
