"""Home Assistant 2026.2.3's MQTT discovery schema, encoded (see tests/test_homeassistant.py for
where each rule comes from); used by the tests that check edgeface's discovery payloads."""
from __future__ import annotations

import re

# -- Home Assistant 2026.2.3's MQTT discovery rules, encoded -----------------------------------
ABBREVIATIONS = {  # the keys edgeface may use (abbreviations.py has ~290)
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "cont_type": "content_type", "def_ent_id": "default_entity_id",
    "dev": "device", "dev_cla": "device_class", "e": "encoding", "en": "enabled_by_default",
    "ent_cat": "entity_category", "ent_pic": "entity_picture", "evt_typ": "event_types", "exp_aft": "expire_after",
    "frc_upd": "force_update", "ic": "icon", "img_e": "image_encoding", "img_t": "image_topic",
    "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template", "o": "origin",
    "obj_id": "object_id", "off_dly": "off_delay", "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available", "pl_off": "payload_off", "pl_on": "payload_on", "qos": "qos",
    "stat_cla": "state_class", "stat_t": "state_topic", "sug_dsp_prc": "suggested_display_precision",
    "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS = {"cns": "connections", "cu": "configuration_url", "ids": "identifiers", "mf": "manufacturer",
                        "mdl": "model", "mdl_id": "model_id", "hw": "hw_version", "sw": "sw_version",
                        "sa": "suggested_area", "sn": "serial_number"}
ORIGIN_ABBREVIATIONS = {"sw": "sw_version", "url": "support_url"}
BINARY_SENSOR_DEVICE_CLASSES = set(
    "battery battery_charging carbon_monoxide cold connectivity door garage_door gas heat light lock moisture motion "
    "moving occupancy opening plug power presence problem running safety smoke sound tamper update vibration "
    "window".split())
SENSOR_DEVICE_CLASSES = set(
    "absolute_humidity apparent_power aqi area atmospheric_pressure battery blood_glucose_concentration "
    "carbon_dioxide carbon_monoxide conductivity current data_rate data_size date distance duration energy "
    "energy_distance energy_storage enum frequency gas humidity illuminance irradiance moisture monetary "
    "nitrogen_dioxide nitrogen_monoxide nitrous_oxide ozone ph pm1 pm10 pm25 pm4 power power_factor precipitation "
    "precipitation_intensity pressure reactive_energy reactive_power signal_strength sound_pressure speed "
    "sulphur_dioxide temperature temperature_delta timestamp volatile_organic_compounds "
    "volatile_organic_compounds_parts voltage volume volume_flow_rate volume_storage water weight wind_direction "
    "wind_speed".split())
SENSOR_STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
SENSOR_DEVICE_CLASS_UNITS = {"temperature": {"°C", "°F", "K"}, "timestamp": {None}}  # (the ones edgeface uses)
EVENT_DEVICE_CLASSES = {"doorbell", "button", "motion"}
# entity.py: JSON attributes Home Assistant drops without a word
MQTT_ATTRIBUTES_BLOCKED = {"assumed_state", "available", "device_class", "device_info", "entity_category",
                           "entity_picture", "entity_registry_enabled_default", "extra_state_attributes",
                           "force_update", "icon", "name", "should_poll", "state", "supported_features", "unique_id",
                           "unit_of_measurement"}

STR, OPT_STR, POS_INT = "string", "string or null", "positive integer"
COMMON = {  # schemas.py MQTT_ENTITY_COMMON_SCHEMA (+ availability) + config.py MQTT_BASE_SCHEMA
    "name": OPT_STR, "unique_id": STR, "object_id": STR, "default_entity_id": "entity id", "icon": "icon",
    "device": "device", "origin": "origin", "entity_picture": "url",
    "availability_topic": "topic", "payload_available": STR, "payload_not_available": STR,
    "json_attributes_topic": "topic", "json_attributes_template": STR, "enabled_by_default": "boolean",
    "entity_category": ("config", "diagnostic"), "qos": (0, 1, 2), "encoding": STR,
}
RO = {**COMMON, "state_topic": "topic", "value_template": STR}  # config.py MQTT_RO_SCHEMA
PLATFORMS = {
    "binary_sensor": ({"state_topic"}, {**RO, "device_class": BINARY_SENSOR_DEVICE_CLASSES, "payload_on": STR,
                                        "payload_off": STR, "expire_after": POS_INT, "off_delay": POS_INT,
                                        "force_update": "boolean"}),
    "sensor": ({"state_topic"}, {**RO, "device_class": SENSOR_DEVICE_CLASSES, "state_class": SENSOR_STATE_CLASSES,
                                 "unit_of_measurement": OPT_STR, "expire_after": POS_INT, "force_update": "boolean",
                                 "suggested_display_precision": POS_INT}),
    "event": ({"state_topic", "event_types"}, {**RO, "event_types": "string list",
                                               "device_class": EVENT_DEVICE_CLASSES}),
    # image.py: exactly one of image_topic / url_topic; content_type only with image_topic
    "image": ({"image_topic"}, {**COMMON, "image_topic": "topic", "content_type": STR,
                                "image_encoding": ("b64", "raw")}),
}
DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "model_id", "name", "hw_version",
               "serial_number", "sw_version", "via_device", "suggested_area", "configuration_url"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}


def expand(payload: dict) -> dict:
    """discovery.py: abbreviated keys (top level and in `device`) to their full names."""
    out = {ABBREVIATIONS.get(k, k): v for k, v in payload.items()}
    if isinstance(out.get("device"), dict):
        out["device"] = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in out["device"].items()}
    if isinstance(out.get("origin"), dict):
        out["origin"] = {ORIGIN_ABBREVIATIONS.get(k, k): v for k, v in out["origin"].items()}
    return out


def _fits(value, rule) -> bool:
    if isinstance(rule, (set, tuple)):
        return value in rule
    if rule == STR:
        return isinstance(value, str)
    if rule == OPT_STR:
        return value is None or isinstance(value, str)
    if rule == POS_INT:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    if rule == "boolean":
        return isinstance(value, bool)
    if rule == "icon":  # cv.icon: "prefix:name"
        return isinstance(value, str) and re.fullmatch(r"[a-z0-9-]+:[a-z0-9-]+", value) is not None
    if rule == "topic":  # valid_subscribe_topic; ours are published to, so no wildcards either
        return isinstance(value, str) and 0 < len(value.encode()) <= 65535 and "\0" not in value \
            and not any(c in value for c in "+#")
    if rule == "entity id":  # entity.py keeps what follows the first ".": the domain must be there
        return isinstance(value, str) and re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", value) is not None
    if rule == "url":
        return isinstance(value, str) and re.match(r"https?://", value) is not None
    if rule == "origin":  # MQTT_ORIGIN_INFO_SCHEMA: name required
        return isinstance(value, dict) and set(value) <= ORIGIN_KEYS and isinstance(value.get("name"), str) \
            and all(isinstance(v, str) for v in value.values()) \
            and ("support_url" not in value or _fits(value["support_url"], "url"))
    if rule == "string list":
        return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
    if rule == "device":
        return isinstance(value, dict) and set(value) <= DEVICE_KEYS and bool(value.get("identifiers")) \
            and all(isinstance(i, str) for i in value["identifiers"]) \
            and all(isinstance(value[k], str) for k in value if k not in ("identifiers", "connections"))
    raise AssertionError(f"no rule {rule!r}")


def schema_problems(platform: str, payload: dict) -> list[str]:
    required, keys = PLATFORMS[platform]
    config = expand(payload)
    problems = [f"required key {k} missing" for k in sorted(required - set(config))]
    for key, value in config.items():
        if key not in keys:
            problems.append(f"unknown key {key}")
        elif not _fits(value, keys[key]):
            problems.append(f"{key}: {value!r} is not a valid {keys[key] if isinstance(keys[key], str) else 'choice'}")
    if platform == "sensor" and config.get("device_class") in SENSOR_DEVICE_CLASS_UNITS \
            and config.get("unit_of_measurement") not in SENSOR_DEVICE_CLASS_UNITS[config["device_class"]]:
        problems.append(f"unit_of_measurement {config.get('unit_of_measurement')!r} does not fit device_class "
                        f"{config['device_class']}")  # sensor.py validate_sensor_state_and_device_class_config
    return problems
