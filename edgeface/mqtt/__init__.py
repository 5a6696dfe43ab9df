"""MQTT transport and what is published on it: identities, Home Assistant discovery, presence, compatibility topics."""
