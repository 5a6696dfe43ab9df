"""Property: no config file, however broken, gives a traceback: it loads or it is one ConfigError.

Inputs are the shipped example (systemd/edgeface.yaml) with keys deleted and values replaced by
random scalars, lists, mappings, tagged values and YAML oddities, plus random YAML-ish text and
random bytes. Every ConfigError line must name the file, as `edgeface run` prints it and exits 2.
"""
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeface.config import Config, ConfigError, load

EXAMPLE = yaml.safe_load((Path(__file__).resolve().parents[1] / "systemd" / "edgeface.yaml").read_text())
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Raw YAML text for one value (flow style, so it fits after "key: ").
TAGGED = [
    "!!python/object/apply:os.getcwd []", "!!python/name:os.system", "!!python/object:builtins.dict {}",
    "!!int abc", "!!float x", "!!bool maybe", "!!binary '%%%'", "!!timestamp x", "!!set {a}", "!!omap [a: 1]",
    "!!str 1", "!!null x", "!local x", "*nowhere", "&a [*a]", "{<<: {a: 1}}", ".nan", "-.inf", ".Inf",
    "1.0e+400", "9" * 50, "-0", "0x1F", "0o17", "1_000", "2024-01-01", "=", "~", "''", "\"\\0\"",
    "\"\\ud800\"", "[]", "{}", "[[[]]]", "{? [a]: 1}", "|\n  text", "\"\\xff\"", "'caf\u00e9'",
]


def _flow(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1_000_000).strip().removesuffix("\n...")


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.sampled_from(["0", "front", "/dev/video0", "localhost", "-1", "1.0"]))
plain_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                            max_leaves=8)
raw_values = st.one_of(plain_values.map(_flow), st.sampled_from(TAGGED),
                       st.lists(st.sampled_from(TAGGED), min_size=1, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"))


def _paths(tree, prefix=()):
    """Every (key path) in the example: mappings by key, lists by index."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


PATHS = list(_paths(EXAMPLE))


@st.composite
def mutated_example(draw) -> str:
    """The example as YAML text, some keys deleted and some values replaced by raw YAML."""
    import copy

    tree = copy.deepcopy(EXAMPLE)
    raw: dict[str, str] = {}
    for n in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        parent = tree
        try:
            for k in path[:-1]:
                parent = parent[k]
            if not isinstance(parent, (dict, list)) or (isinstance(parent, list) and path[-1] >= len(parent)):
                continue
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this branch
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            marker = f"RAWVALUE{n}"
            parent[path[-1]] = marker
            raw[marker] = draw(raw_values)
    if draw(st.booleans()):  # an unknown key, maybe near a real one
        section = draw(st.sampled_from(["mqtt", "detection", "tracking", "recognition"]))
        if isinstance(tree.get(section), dict):
            tree[section][draw(st.sampled_from(["hots", "prot", "angels", "vote_cont", "x"]))] = 1
    text = yaml.safe_dump(tree, sort_keys=False, width=1_000_000)
    for marker, value in raw.items():
        text = text.replace(marker, value)
    return text


yaml_ish_text = st.text(alphabet=st.sampled_from(list("abcmqt:_ -[]{},&*!|>'\"#%@`?\n\t.019\\~<=\u00e9\x00\x07")),
                        max_size=120)


def _check(tmp: Path, data: bytes) -> None:
    path = tmp / "edgeface.yaml"
    path.write_bytes(data)
    try:
        cfg = load(path)
    except ConfigError as e:
        message = str(e)
        assert message, "empty ConfigError"
        for line in message.splitlines():
            assert line.startswith(f"{path}"), message
        return
    assert isinstance(cfg, Config)


TMP = Path(tempfile.mkdtemp(prefix="edgeface-config-fuzz-"))


@SETTINGS
@given(mutated_example())
def test_mutated_example_loads_or_is_a_config_error(text):
    _check(TMP, text.encode("utf-8", "surrogatepass"))


@SETTINGS
@given(yaml_ish_text)
def test_random_yaml_text_loads_or_is_a_config_error(text):
    _check(TMP, text.encode("utf-8"))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_load_or_are_a_config_error(data):
    _check(TMP, data)


def test_the_example_itself_loads():
    cfg = load(Path(__file__).resolve().parents[1] / "systemd" / "edgeface.yaml")
    assert cfg.cameras[0].name == "front" and cfg.mqtt.client_id.startswith("edgeface-")
    assert cfg.gallery == "/var/lib/edgeface/gallery.db"
