"""Gallery sync between the devices of one household over MQTT."""
