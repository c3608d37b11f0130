"""JSON <-> dataclass codec shared by every protocol message.

A protocol message is a ``@message`` dataclass whose fields carry type hints. The codec
reads the hints once per class and builds a decoder and an encoder from them, so that a
message is data and its wire form is derived, not hand written (the kazoo model).

Wire rules, which follow Mesos's protobuf JSON mapping:

* field names are the proto's snake_case names;
* ``ID`` fields (``TaskID``, ``FrameworkID``, ...) travel as ``{"value": "..."}`` and are
  plain ``str`` in Python;
* enums travel as their names; ``bytes`` as Base64;
* unset (``None``) and empty repeated fields are left out;
* keys a message does not model are kept in ``extra`` and written back unchanged, so a
  TaskInfo passes through the master to the agent without losing fields.

Decoding errors raise :class:`BadRequest` with the dotted path of the bad field.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_origin, get_type_hints

from .errors import BadRequest

ID = Annotated[str, "mesos-id"]
"""A Mesos ``*ID`` message (``{"value": str}``), held as the bare string."""

T = TypeVar("T", bound="Message")
Decoder = Callable[[Any, str], Any]
Encoder = Callable[[Any], Any]
_MISSING = dataclasses.MISSING


class Message:
    """Base of every protocol message. Subclasses are made with :func:`message`."""

    __slots__ = ()
    _fields_spec: ClassVar[tuple[tuple[str, Decoder, Encoder, bool], ...]]
    _known: ClassVar[frozenset[str]]
    extra: dict[str, Any]

    @classmethod
    def from_json(cls: type[T], data: Any, path: str = "") -> T:
        """Build the message from its JSON object; raise BadRequest when malformed."""
        spec = _spec(cls)
        where = path or cls.__name__
        if not isinstance(data, dict):
            raise BadRequest(f"{where}: expected a JSON object, got {_kind(data)}")
        kwargs: dict[str, Any] = {}
        for name, decode, _encode, required in spec:
            value = data.get(name)
            if value is None:
                if required:
                    raise BadRequest(f"{where}: missing required field '{name}'")
                continue
            kwargs[name] = decode(value, f"{where}.{name}")
        known = cls._known
        extra = {k: v for k, v in data.items() if k not in known}
        if extra:
            kwargs["extra"] = extra
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON-ready dict in Mesos's field names."""
        out: dict[str, Any] = {}
        for name, _decode, encode, _required in _spec(type(self)):
            value = getattr(self, name)
            if value is None or (not value and isinstance(value, (list, dict))):
                continue
            out[name] = encode(value)
        if self.extra:
            for key, value in self.extra.items():
                out.setdefault(key, value)
        return out


def message(cls: type[T]) -> type[T]:
    """Class decorator: make ``cls`` a slotted dataclass with an ``extra`` field."""
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - mutated below
    if "extra" not in annotations:
        annotations["extra"] = dict[str, Any]
        cls.extra = dataclasses.field(default_factory=dict, repr=False, compare=False)  # type: ignore[attr-defined]
    return dataclasses.dataclass(slots=True, kw_only=True)(cls)  # type: ignore[return-value]


_SPECS: dict[type, tuple] = {}


def _spec(cls: type) -> tuple[tuple[str, Decoder, Encoder, bool], ...]:
    spec = _SPECS.get(cls)
    if spec is None:
        hints = get_type_hints(cls, include_extras=True)
        rows = []
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            decode, encode = _converters(hints[f.name])
            required = f.default is _MISSING and f.default_factory is _MISSING
            rows.append((f.name, decode, encode, required))
        spec = tuple(rows)
        _SPECS[cls] = spec
        cls._known = frozenset(r[0] for r in rows)  # type: ignore[attr-defined]
    return spec


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _identity(value: Any) -> Any:
    return value


def _converters(hint: Any) -> tuple[Decoder, Encoder]:
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        if "mesos-id" in meta:
            return _decode_id, _encode_id
        return _converters(base)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _converters(args[0])
        return _decode_any, _identity
    if origin is list:
        (item,) = get_args(hint)
        item_decode, item_encode = _converters(item)

        def decode_list(value: Any, path: str) -> list:
            if not isinstance(value, list):
                raise BadRequest(f"{path}: expected an array, got {_kind(value)}")
            return [item_decode(v, f"{path}[{i}]") for i, v in enumerate(value)]

        if item_encode is _identity:
            return decode_list, list
        return decode_list, lambda values: [item_encode(v) for v in values]
    if origin is dict or hint is dict:
        def decode_dict(value: Any, path: str) -> dict:
            if not isinstance(value, dict):
                raise BadRequest(f"{path}: expected an object, got {_kind(value)}")
            return value

        return decode_dict, _identity
    if isinstance(hint, type):
        if issubclass(hint, Message):
            return hint.from_json, _encode_message
        if issubclass(hint, enum.Enum):
            return _enum_decoder(hint), _encode_enum
        if hint is bool:
            return _decode_bool, _identity
        if hint is int:
            return _decode_int, _identity
        if hint is float:
            return _decode_float, _identity
        if hint is str:
            return _decode_str, _identity
        if hint is bytes:
            return _decode_bytes, _encode_bytes
    if hint is Any:
        return _decode_any, _identity
    raise TypeError(f"codec cannot handle type hint {hint!r}")


def _decode_any(value: Any, path: str) -> Any:
    return value


def _decode_id(value: Any, path: str) -> str:
    if isinstance(value, dict):
        inner = value.get("value")
        if isinstance(inner, str) and inner:
            return inner
        raise BadRequest(f"{path}: expected {{\"value\": \"<non-empty string>\"}}")
    raise BadRequest(f"{path}: expected {{\"value\": ...}}, got {_kind(value)}")


def _encode_id(value: str) -> dict[str, str]:
    return {"value": value}


def _encode_message(value: Message) -> dict[str, Any]:
    return value.to_json()


def _encode_enum(value: enum.Enum) -> Any:
    return value.value


def _enum_decoder(enum_cls: type[enum.Enum]) -> Decoder:
    def decode(value: Any, path: str) -> enum.Enum:
        try:
            return enum_cls(value)
        except ValueError:
            names = ", ".join(m.value for m in enum_cls)  # type: ignore[misc]
            raise BadRequest(f"{path}: unknown value {value!r}; expected one of {names}") from None

    return decode


def _decode_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise BadRequest(f"{path}: expected a boolean, got {_kind(value)}")


def _decode_int(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise BadRequest(f"{path}: expected an integer, got {_kind(value)}")


def _decode_float(value: Any, path: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # protobuf JSON allows "Infinity" and numeric strings
        except ValueError:
            pass
    raise BadRequest(f"{path}: expected a number, got {_kind(value)}")


def _decode_str(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    raise BadRequest(f"{path}: expected a string, got {_kind(value)}")


def _decode_bytes(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise BadRequest(f"{path}: expected a Base64 string, got {_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{path}: not valid Base64") from None


def _encode_bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


class ProtoEnum(enum.StrEnum):
    """A protobuf enum: travels as its name; ``number`` is the proto tag value."""

    def __new__(cls, name: str, number: int = 0) -> ProtoEnum:
        obj = str.__new__(cls, name)
        obj._value_ = name
        obj.number = number  # type: ignore[attr-defined]
        return obj

    @classmethod
    def _missing_(cls, value: object) -> ProtoEnum | None:
        if isinstance(value, int) and not isinstance(value, bool):
            for member in cls:
                if member.number == value:  # type: ignore[attr-defined]
                    return member
        return None
