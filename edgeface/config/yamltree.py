"""Typed YAML: dataclasses built from composed YAML nodes, every problem collected with its line.

Walking *nodes* rather than plain dicts lets an unknown key, a wrong type or a value out of range
be reported with its key path and the line it sits on. Only the YAML core schema is ever
constructed (null, bool, int, float, str, lists, mappings): any other tag (!!python/..., !!set,
local !tags) is refused, NaN and infinity too, and the values of secret keys (password, *key*,
*secret*, *token*) are never echoed. A dataclass's __post_init__ may raise one ValueError with
one problem per line; a line starting with a field's name is reported at that field's key.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """Config problems, one per line; each line names the file, line and key path."""


class Mismatch(Exception):
    """The node itself has the wrong shape or type (a union may try its next option)."""

    def __init__(self, node: yaml.Node, path: str, msg: str):
        super().__init__(msg)
        self.node, self.path, self.msg = node, path, msg


class Reported(Exception):
    """The problem is already in the builder's list; the value being built is abandoned."""



_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_CORE + t for t in ("null", "bool", "int", "float", "str")}
# Plain scalars PyYAML resolves to YAML 1.1 types (2024-01-01, =): taken as their text, never constructed.
_AS_TEXT_TAGS = {_CORE + "timestamp", _CORE + "value"}
_INT_RANGE = (-(2**31), 2**31 - 1)  # no setting needs more; C code below (cv2, paho) takes C ints
_SECRET_WORDS = {"password", "passwd", "pass", "secret", "key", "token", "apikey", "credentials"}
_MAX_ANY_NODES = 10_000  # free-form values (delegate_options): bounds alias bombs
_MAX_DEPTH = 32
_MAX_LISTED = 50  # problems listed in one ConfigError


def _describe(tp) -> str:
    if tp in _TYPE_WORDS:
        return _TYPE_WORDS[tp]
    if dataclasses.is_dataclass(tp) or tp is dict or typing.get_origin(tp) is dict:
        return "a mapping"
    if typing.get_origin(tp) in (list, tuple):
        return "a list"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if _is_union(tp):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _is_union(tp) -> bool:
    return typing.get_origin(tp) is Union or isinstance(tp, types.UnionType)


def _is_secret(path: str) -> bool:
    """A key whose value must never appear in a message: password, *_key, api_token, ..."""
    name = re.sub(r"\[\d+\]$", "", path.rsplit(".", 1)[-1]).lower()
    return "password" in name or "secret" in name or bool(_SECRET_WORDS & set(re.split(r"[^a-z0-9]+", name)))


def one_line(text: str) -> str:
    """Control characters (a newline in a key, say) escaped: one problem stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _bad_text(value: str) -> bool:
    """NUL or a lone surrogate ("\\ud800"): no path, topic or name can hold one."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return "\0" in value


class Builder:
    """Turns a composed YAML node tree into dataclasses, collecting every problem with its key path.

    not_keys: per dataclass, fields that are bookkeeping rather than YAML keys.
    """

    def __init__(self, loader: yaml.SafeLoader, filename: str, not_keys: dict[type, set[str]] | None = None):
        self.loader = loader
        self.filename = filename
        self.not_keys = not_keys or {}
        self.problems: list[tuple[int, str]] = []  # (line, "FILE:LINE: path: message")
        self.lines: dict[str, int] = {}  # key path -> line, for checks made after building (files)
        self.free_nodes = 0

    # -- problems ------------------------------------------------------------------------
    def report(self, node: yaml.Node | None, path: str, msg: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        where = f":{line}" if line else ""
        self.problems.append((line, one_line(f"{self.filename}{where}: {path or '(top level)'}: {msg}")))

    def fail(self, node: yaml.Node | None, path: str, msg: str) -> typing.NoReturn:
        self.report(node, path, msg)
        raise Reported

    def mismatch(self, node: yaml.Node, path: str, tp) -> typing.NoReturn:
        raise Mismatch(node, path, f"expected {_describe(tp)}, got {self._shown(node, path)}")

    def error(self) -> ConfigError | None:
        """One ConfigError listing every problem in file order, or None."""
        lines = list(dict.fromkeys(msg for _, msg in sorted(self.problems, key=lambda p: p[0])))
        if not lines:
            return None
        if len(lines) > _MAX_LISTED:
            lines = lines[:_MAX_LISTED] + [f"{self.filename}: ... and {len(lines) - _MAX_LISTED} more problem(s)"]
        return ConfigError("\n".join(lines))

    def guarded(self, build: typing.Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """(True, build(*args)), or (False, None) with the problem recorded: a caller goes on to its next key."""
        try:
            return True, build(*args)
        except Mismatch as e:
            self.report(e.node, e.path, e.msg)
        except Reported:
            pass
        return False, None

    # -- scalars -------------------------------------------------------------------------
    def check_tag(self, node: yaml.Node, path: str) -> None:
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            ok = tag in _SCALAR_TAGS or tag in _AS_TEXT_TAGS
        else:
            ok = tag == _CORE + ("seq" if isinstance(node, yaml.SequenceNode) else "map")
        if not ok:
            if tag == _CORE + "merge":
                self.fail(node, path, "merge keys (<<) are not supported; write the keys out")
            self.fail(node, path, f"the tag {tag.replace(_CORE, '!!')} is not allowed (plain YAML values only)")

    def scalar(self, node: yaml.Node, path: str) -> Any:
        """A core-schema scalar's value; anything else, NaN, infinity or a broken one is reported."""
        self.check_tag(node, path)
        if not isinstance(node, yaml.ScalarNode):
            raise Mismatch(node, path, f"expected a single value, got {self._shown(node, path)}")
        if node.tag in _AS_TEXT_TAGS:
            return node.value
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, KeyError, AttributeError, TypeError, OverflowError) as e:
            tag = node.tag.replace(_CORE, "!!")
            if _is_secret(path):
                self.fail(node, path, f"cannot read this {tag} value (not shown: a secret)")
            self.fail(node, path, f"cannot read {tag} {self._shown(node, path)} ({e})")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(node, path, "must be a finite number (not NaN or infinity)")
        if isinstance(value, int) and not isinstance(value, bool) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            self.fail(node, path, f"integer out of range ({_INT_RANGE[0]}..{_INT_RANGE[1]})")
        if isinstance(value, str) and _bad_text(value):
            self.fail(node, path, "text holds a NUL or an unpaired surrogate character")
        return value

    def key(self, node: yaml.Node, path: str) -> str:
        """A mapping key: its text (a plain word is all any key here needs)."""
        self.check_tag(node, path)
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, path, "a key must be a plain word, not a list or mapping")
        return str(node.value)

    # -- structure -----------------------------------------------------------------------
    def build(self, node: yaml.Node, tp, path: str) -> Any:
        self.check_tag(node, path)
        if tp is Any:
            return self.free(node, path, 0)
        if _is_union(tp):
            # Try the options in order; a value fitting none reports the whole union.
            for option in typing.get_args(tp):
                try:
                    return self.build(node, option, path)
                except Mismatch as e:
                    if e.node is not node:
                        raise  # a problem deeper inside a value of the right shape: report that one
            self.mismatch(node, path, tp)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(node, tp, path)
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            if not isinstance(node, yaml.SequenceNode):
                self.mismatch(node, path, tp)
            args = typing.get_args(tp)
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(args) != len(node.value):
                    self.fail(node, path, f"expected a list of {len(args)} items, got {len(node.value)}")
                item_types = list(args)
            else:
                item_types = [args[0] if args else Any] * len(node.value)
            results = [self.guarded(self.build, n, a, f"{path}[{i}]")
                       for i, (n, a) in enumerate(zip(node.value, item_types))]
            if not all(ok for ok, _ in results):
                raise Reported
            items = [value for _, value in results]
            return tuple(items) if origin is tuple else items
        if origin is dict or tp is dict:
            if not isinstance(node, yaml.MappingNode):
                self.mismatch(node, path, tp)
            value_tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
            return self.mapping(node, path, lambda v, sub: self.build(v, value_tp, sub))
        if origin is Literal:
            value = self.scalar(node, path) if isinstance(node, yaml.ScalarNode) else None
            choices = typing.get_args(tp)
            if isinstance(value, str):  # log levels and the like: case does not matter
                value = next((c for c in choices if isinstance(c, str) and c.lower() == value.lower()), value)
            if value not in choices:
                self.mismatch(node, path, tp)
            return value
        if tp in (int, float, str, bool, type(None)):
            if not isinstance(node, yaml.ScalarNode):
                self.mismatch(node, path, tp)
            value = self.scalar(node, path)
            if not ((type(value) is tp) or (tp is float and type(value) is int)):
                self.mismatch(node, path, tp)
            if tp is float:
                try:
                    return float(value)
                except OverflowError:
                    self.fail(node, path, "number too large")
            return value
        self.fail(node, path, f"unsupported config type {tp!r} (a bug in the config schema)")

    def mapping(self, node: yaml.MappingNode, path: str, build_value) -> dict[str, Any]:
        """A free-keyed mapping (delegate_options): every key once, every value built."""
        out: dict[str, Any] = {}
        ok = True
        for key_node, value_node in node.value:
            got_key, key = self.guarded(self.key, key_node, f"{path}.?")
            if not got_key:
                ok = False
                continue
            sub = f"{path}.{key}"
            if key in out:
                self.report(key_node, sub, "key given twice")
                ok = False
                continue
            got, value = self.guarded(build_value, value_node, sub)
            ok = ok and got
            out[key] = value
        if not ok:
            raise Reported
        return out

    def free(self, node: yaml.Node, path: str, depth: int) -> Any:
        """A free-form value (typed Any): plain scalars, lists and mappings only, bounded in size."""
        self.check_tag(node, path)
        self.free_nodes += 1
        if depth > _MAX_DEPTH or self.free_nodes > _MAX_ANY_NODES:
            self.fail(node, path, "value nested too deeply or too large (aliases?)")
        if isinstance(node, yaml.SequenceNode):
            results = [self.guarded(self.free, n, f"{path}[{i}]", depth + 1) for i, n in enumerate(node.value)]
            if not all(ok for ok, _ in results):
                raise Reported
            return [value for _, value in results]
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, lambda v, sub: self.free(v, sub, depth + 1))
        return self.scalar(node, path)

    def dataclass(self, node: yaml.Node, cls, path: str) -> Any:
        self.check_tag(node, path)
        if isinstance(node, yaml.ScalarNode) and node.tag == _CORE + "null":
            node_items: list[tuple[yaml.Node, yaml.Node]] = []
        elif not isinstance(node, yaml.MappingNode):
            self.mismatch(node, path, cls)
        else:
            node_items = node.value
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in self.not_keys.get(cls, ())}
        kwargs: dict[str, Any] = {}
        key_nodes: dict[str, yaml.Node] = {}
        ok = True
        for key_node, value_node in node_items:
            got_key, key = self.guarded(self.key, key_node, f"{path}.?" if path else "?")
            if not got_key:
                ok = False
                continue
            sub = f"{path}.{key}" if path else key
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f"did you mean `{close[0]}`?" if close else f"allowed: {', '.join(sorted(fields))}"
                self.report(key_node, sub, f"unknown key; {hint}")
                ok = False
                continue
            if key in key_nodes:
                self.report(key_node, sub, "key given twice")
                ok = False
                continue
            key_nodes[key] = key_node
            self.lines[sub] = key_node.start_mark.line + 1
            got, value = self.guarded(self.build, value_node, hints[key], sub)
            if got:
                kwargs[key] = value
            ok = ok and got
        for name, f in fields.items():
            if name not in key_nodes and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.report(node, f"{path}.{name}" if path else name, "required key is missing")
                ok = False
        try:
            value = cls(**kwargs)
        except (ValueError, TypeError) as e:
            # One problem per line; a line starting with a field's name is reported at that key.
            # With other problems in this mapping, only lines about keys that were read are kept
            # (the rest may be about defaults standing in for the broken keys).
            for line in str(e).splitlines() or [type(e).__name__]:
                name, _, rest = line.partition(" ")
                if name in kwargs and rest:
                    self.report(key_nodes[name], f"{path}.{name}" if path else name, rest)
                elif ok:
                    self.report(node, path, line)
            raise Reported from None
        if not ok:
            raise Reported
        return value

    def check_camera_names(self, root: yaml.Node) -> None:
        """Camera names are MQTT topic levels: each once (checked on the nodes, so with the other problems)."""
        if not isinstance(root, yaml.MappingNode):
            return
        cameras = next((v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "cameras"), None)
        if not isinstance(cameras, yaml.SequenceNode):
            return
        seen: set[str] = set()
        for i, cam in enumerate(cameras.value):
            if not isinstance(cam, yaml.MappingNode):
                continue
            name = next((v for k, v in cam.value if isinstance(k, yaml.ScalarNode) and k.value == "name"), None)
            if isinstance(name, yaml.ScalarNode):
                if name.value in seen:
                    self.report(cam, f"cameras[{i}].name", f"camera name {name.value!r} used twice")
                seen.add(name.value)

    def _shown(self, node: yaml.Node, path: str) -> str:
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _CORE + "null":
                return "null"
            if _is_secret(path):  # never echo a secret, even a wrongly typed one
                kind = {_CORE + "int": "a number", _CORE + "float": "a number", _CORE + "bool": "true/false"}
                return f"{kind.get(node.tag, 'a value')} (not shown: a secret; quote it if it is text)"
            return repr(node.value)
        return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
