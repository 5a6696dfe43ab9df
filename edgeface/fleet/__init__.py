"""Gallery sync between the devices of one household over MQTT.

records (key, signed record format, topics, checks on every received record) -> ledger
(applying a record to the gallery, newest wins) -> catchup (reading the retained set in pages)
-> sync (FleetSync: the connection, PUBACKs, reconcile, re-assert) ; status (device status records).
"""
