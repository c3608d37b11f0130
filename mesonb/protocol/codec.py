"""JSON <-> dataclass codec shared by every protocol message.

A protocol message is a ``@message`` dataclass whose fields carry type hints. The codec
reads the hints once per class and builds a decoder and an encoder from them, so that a
message is data and its wire form is derived, not hand written (the kazoo model).

Wire rules, which follow Mesos's protobuf JSON mapping:

* field names are the proto's snake_case names;
* ``ID`` fields (``TaskID``, ``FrameworkID``, ...) travel as ``{"value": "..."}`` and are
  plain ``str`` in Python;
* enums travel as their names; ``bytes`` as Base64;
* floats must be finite: ``NaN`` and ``Infinity`` (which protobuf's JSON mapping allows as
  strings) would make the master write invalid JSON or keep a deadline that never comes;
* ``Annotated[T, Check(fn)]`` runs ``fn`` on the decoded value, for rules of a field beyond
  its type (e.g. the scalars of a resource list);
* unset (``None``) and empty repeated fields are left out;
* keys a message does not model are kept in ``extra`` and written back unchanged, so a
  TaskInfo passes through the master to the agent without losing fields.

Decoding errors raise :class:`BadRequest` with the dotted path of the bad field.
"""

from __future__ import annotations

import binascii
import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_origin, get_type_hints

from .errors import BadRequest

ID = Annotated[str, "mesos-id"]
"""A Mesos ``*ID`` message (``{"value": str}``), held as the bare string."""

T = TypeVar("T", bound="Message")
Decoder = Callable[[Any], Any]
Encoder = Callable[[Any], Any]
_MISSING = dataclasses.MISSING


class _Invalid(Exception):
    """A decoding problem; ``path`` grows as it travels up to the message that raised."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


class Check:
    """``Annotated`` metadata: a rule for a field's decoded value.

    ``check(value)`` returns None when the value is fine, else ``(where, problem)``;
    ``where`` continues the field's path (``"[0].scalar.value"``).
    """

    __slots__ = ("check",)

    def __init__(self, check: Callable[[Any], tuple[str, str] | None]) -> None:
        self.check = check


class Message:
    """Base of every protocol message. Subclasses are made with :func:`message`.

    The first use of a class compiles a decoder and an encoder for it from its type
    hints (plain Python source, built once), so the per-message cost is that of
    hand-written code.
    """

    __slots__ = ()
    _decode: ClassVar[Callable[[Any], Any]]
    extra: dict[str, Any]

    @classmethod
    def from_json(cls: type[T], data: Any, path: str = "") -> T:
        """Build the message from its JSON object; raise BadRequest when malformed."""
        try:
            return (_CODECS.get(cls) or _codec(cls))[0](data)
        except _Invalid as exc:
            where = (path or cls.__name__) + "".join(exc.path)
            raise BadRequest(f"{where}: {exc.message}") from None
        except RecursionError:  # data built in Python, not read by jsontext.loads
            raise BadRequest(f"{path or cls.__name__}: nested too deeply") from None

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON-ready dict in Mesos's field names."""
        return _codec(type(self))[1](self)


_COPIERS: dict[type, Callable[[Any], Any]] = {}


def copy_of(msg: T) -> T:
    """A shallow copy of a message, as ``dataclasses.replace(msg)`` makes (the same field
    values, ``extra`` included; ``__post_init__`` not run again), ten times faster:
    every slot is copied by code compiled once per class."""
    cls = type(msg)
    copier = _COPIERS.get(cls)
    if copier is None:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        env: dict[str, Any] = {"cls": cls, "new": object.__new__}
        exec("\n".join(["def copy(msg):", "    o = new(cls)",
                        *(f"    o.{n} = msg.{n}" for n in names), "    return o"]), env)
        copier = _COPIERS[cls] = env["copy"]
    return copier(msg)


@typing.dataclass_transform(kw_only_default=True, field_specifiers=(dataclasses.field,))
def message(cls: type[T]) -> type[T]:
    """Class decorator: make ``cls`` a slotted dataclass with an ``extra`` field."""
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - mutated below
    if "extra" not in annotations:
        annotations["extra"] = dict[str, Any]
        cls.extra = dataclasses.field(default_factory=dict, repr=False, compare=False)
    return dataclasses.dataclass(slots=True, kw_only=True)(cls)


_CODECS: dict[type, tuple[Callable[[Any], Any], Callable[[Any], dict[str, Any]]]] = {}


def _codec(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], dict[str, Any]]]:
    codec = _CODECS.get(cls)
    if codec is None:
        codec = _compile(cls)
        _CODECS[cls] = codec
        # later calls skip the lookup
        cls.to_json = codec[1]  # type: ignore[attr-defined]
    return codec


_COMPILING: set[type] = set()


def _compile(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], dict[str, Any]]]:
    _COMPILING.add(cls)
    try:
        return _compile_fields(cls)
    finally:
        _COMPILING.discard(cls)


def _compile_fields(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], dict[str, Any]]]:
    hints = get_type_hints(cls, include_extras=True)
    decoders: dict[str, Decoder] = {}
    required: list[str] = []
    lines = ["def encode(self):", "    out = {}"]
    env: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "extra":
            continue
        decode, encode, kind = _converters(hints[f.name])
        decoders[f.name] = decode
        if f.default is _MISSING and f.default_factory is _MISSING:
            required.append(f.name)
        env[f"enc_{f.name}"] = encode
        test = "if v:" if kind == "container" else "if v is not None:"
        value = _inline(encode) or f"enc_{f.name}(v)"
        lines += [f"    v = self.{f.name}", f"    {test}", f"        out[{f.name!r}] = {value}"]
    lines += [
        "    extra = self.extra",
        "    if extra:",
        "        for k, x in extra.items():",
        "            out.setdefault(k, x)",
        "    return out",
    ]
    exec("\n".join(lines), env)
    encoder = env["encode"]
    need = frozenset(required)
    get = decoders.get

    def decoder(data: Any) -> Any:
        if type(data) is not dict:
            raise _Invalid(f"expected a JSON object, got {_kind(data)}")
        kwargs: dict[str, Any] = {}
        extra = None
        for key, value in data.items():
            decode = get(key)
            if decode is None:
                if extra is None:
                    extra = {}
                extra[key] = value
            elif value is not None:
                try:
                    kwargs[key] = decode(value)
                except _Invalid as exc:
                    exc.path.insert(0, f".{key}")
                    raise
        if need and not need <= kwargs.keys():
            missing = sorted(need - kwargs.keys())[0]
            raise _Invalid(f"missing required field '{missing}'")
        if extra:
            kwargs["extra"] = extra
        return cls(**kwargs)

    return _fast_decoder(cls, decoders, decoder), encoder


def _fast_decoder(cls: type, decoders: dict[str, Decoder], generic: Decoder) -> Decoder:
    """A decoder compiled for ``cls`` that reads each field's key straight off the object
    and fills the slots without ``__init__``'s keyword parsing; ``str``, ``ID`` and enum
    fields are read inline. At the first problem (a bad value, a missing field) it hands
    the object to ``generic``, the decoder above, so errors and their paths are its own.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if ("extra" not in fields or hasattr(cls, "__post_init__")
            or any(not f.init for f in fields.values())):
        return generic
    env: dict[str, Any] = {"cls": cls, "new": object.__new__, "generic": generic,
                           "_Invalid": _Invalid, "known": frozenset(decoders)}
    lines = ["def decode(data):",
             "    if type(data) is not dict:",
             "        return generic(data)",
             "    try:",
             "        o = new(cls)",
             "        n = 0"]
    for name, decode in decoders.items():
        f = fields[name]
        if f.default is not _MISSING:
            env[f"def_{name}"] = f.default
            absent = f"o.{name} = def_{name}"
        elif f.default_factory is not _MISSING:
            env[f"fac_{name}"] = f.default_factory
            absent = f"o.{name} = fac_{name}()"
        else:
            absent = "return generic(data)"
        env[f"dec_{name}"] = decode
        members = getattr(decode, "members", None)
        if decode is _decode_str:
            read = ["if type(v) is not str: return generic(data)", f"o.{name} = v"]
        elif decode is _decode_id:
            read = ["x = v.get('value') if type(v) is dict else None",
                    "if type(x) is not str or not x: return generic(data)",
                    f"o.{name} = x"]
        elif members is not None:
            env[f"mem_{name}"] = members
            read = [f"x = mem_{name}.get(v) if type(v) is str else None",
                    f"o.{name} = dec_{name}(v) if x is None else x"]
        else:
            read = [f"o.{name} = dec_{name}(v)"]
        lines += [f"        v = data.get({name!r})",
                  "        if v is None:",
                  f"            {absent}",
                  "        else:",
                  "            n += 1",
                  *(f"            {line}" for line in read)]
    lines += ["        if n == len(data):",
              "            o.extra = {}",
              "        else:",
              "            o.extra = {k: x for k, x in data.items() if k not in known}",
              "        return o",
              "    except _Invalid:",
              "        return generic(data)"]
    exec("\n".join(lines), env)
    fast = env["decode"]
    fast.generic = generic  # the reference the tests compare with
    return fast


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _identity(value: Any) -> Any:
    return value


def _converters(hint: Any) -> tuple[Decoder, Encoder, str]:
    """``(decode, encode, kind)`` for a type hint; kind is "container" or "value"."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        if "mesos-id" in meta:
            return _decode_id, _encode_id, "value"
        decode, encode, kind = _converters(base)
        checks = [m.check for m in meta if isinstance(m, Check)]
        if checks:
            decode = _checked(decode, checks)
        return decode, encode, kind
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _converters(args[0])
        return _identity, _identity, "value"
    if origin is list:
        (item,) = get_args(hint)
        item_decode, item_encode, _ = _converters(item)

        def decode_list(value: Any) -> list:
            if type(value) is not list:
                raise _Invalid(f"expected an array, got {_kind(value)}")
            try:
                return [item_decode(v) for v in value]
            except _Invalid as exc:
                for i, v in enumerate(value):
                    try:
                        item_decode(v)
                    except _Invalid:
                        exc.path.insert(0, f"[{i}]")
                        break
                raise

        list_decode: Decoder = decode_list
        if item_decode is _decode_str or item_decode is _decode_dict:
            list_decode = _plain_list(str if item_decode is _decode_str else dict, decode_list)
        if item_encode is _identity:
            return list_decode, list, "container"

        def encode_list(values: list) -> list:
            return [item_encode(v) for v in values]

        if item_encode is _encode_message:  # the encoders' source calls to_json inline
            encode_list.inline = "[x.to_json() for x in v]"  # type: ignore[attr-defined]
        return list_decode, encode_list, "container"
    if origin is dict or hint is dict:
        return _decode_dict, _identity, "container"
    if isinstance(hint, type):
        if issubclass(hint, Message):
            if hint in _COMPILING:  # a recursive type: look the decoder up when used
                return (lambda value, cls=hint: _codec(cls)[0](value)), _encode_message, "value"
            return _codec(hint)[0], _encode_message, "value"
        if issubclass(hint, enum.Enum):
            return _enum_decoder(hint), _encode_enum, "value"
        simple = {bool: _decode_bool, int: _decode_int, float: _decode_float, str: _decode_str}
        if hint in simple:
            return simple[hint], _identity, "value"
        if hint is bytes:
            return _decode_bytes, _encode_bytes, "value"
    if hint is Any:
        return _identity, _identity, "value"
    raise TypeError(f"codec cannot handle type hint {hint!r}")


def _checked(decode: Decoder, checks: list[Callable[[Any], tuple[str, str] | None]]) -> Decoder:
    def decode_checked(value: Any) -> Any:
        out = decode(value)
        for check in checks:
            problem = check(out)
            if problem is not None:
                exc = _Invalid(problem[1])
                exc.path.append(problem[0])
                raise exc
        return out

    return decode_checked


def _plain_list(kind: type, decode_list: Decoder) -> Decoder:
    """``decode_list`` for items of one plain type (strings, objects), whose decoder only
    checks that type: the check inline, no call per item; anything else (the error and
    its path) goes to ``decode_list``."""

    def decode_plain(value: Any) -> list:
        if type(value) is list:
            for v in value:
                if type(v) is not kind:
                    break
            else:
                return list(value)
        return decode_list(value)

    return decode_plain


def _decode_dict(value: Any) -> dict:
    if type(value) is not dict:
        raise _Invalid(f"expected an object, got {_kind(value)}")
    return value


def _decode_id(value: Any) -> str:
    if type(value) is dict:
        inner = value.get("value")
        if type(inner) is str and inner:
            return inner
        raise _Invalid("expected {\"value\": \"<non-empty string>\"}")
    raise _Invalid(f"expected {{\"value\": ...}}, got {_kind(value)}")


def _encode_id(value: str) -> dict[str, str]:
    return {"value": value}


def _encode_message(value: Message) -> dict[str, Any]:
    return value.to_json()


def _encode_enum(value: enum.Enum) -> Any:
    return value._value_


_INLINE: dict[Encoder, str] = {
    _identity: "v",
    _encode_id: "{'value': v}",
    _encode_message: "v.to_json()",
    _encode_enum: "v._value_",
}
"""Encoders the compiled ``encode`` writes inline: ``v`` is the field's value."""


def _inline(encode: Encoder) -> str | None:
    """The source the compiled ``encode`` writes for ``encode(v)``, where it has one."""
    return _INLINE.get(encode) or getattr(encode, "inline", None)


def _enum_decoder(enum_cls: type[enum.Enum]) -> Decoder:
    members = enum_cls._value2member_map_

    def decode(value: Any) -> enum.Enum:
        member = members.get(value) if isinstance(value, str) else None
        if member is not None:
            return member
        try:
            return enum_cls(value)
        except ValueError:
            names = ", ".join(m.value for m in enum_cls)
            raise _Invalid(f"unknown value {value!r}; expected one of {names}") from None

    decode.members = members  # type: ignore[attr-defined]  # read inline by _fast_decoder
    return decode


def _decode_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _Invalid(f"expected a boolean, got {_kind(value)}")


def _decode_int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is str:
        try:
            return int(value)
        except ValueError:
            pass
    raise _Invalid(f"expected an integer, got {_kind(value)}")


def _decode_float(value: Any) -> float:
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int or kind is str:  # protobuf JSON allows numeric strings
        try:
            number = float(value)
        except ValueError:
            raise _Invalid(f"expected a number, got {_kind(value)}") from None
        except OverflowError:
            raise _Invalid("expected a finite number, got a number out of range") from None
    else:
        raise _Invalid(f"expected a number, got {_kind(value)}")
    if not math.isfinite(number):
        raise _Invalid(f"expected a finite number, got {value!r}")
    return number


def _decode_str(value: Any) -> str:
    if type(value) is str:
        return value
    raise _Invalid(f"expected a string, got {_kind(value)}")


_a2b_base64 = binascii.a2b_base64
_b2a_base64 = binascii.b2a_base64

_TEXTS: dict[int, tuple[bytes, str]] = {}
"""Base64 text of bytes decoded lately, by ``id`` (a TaskInfo's ``data`` is encoded again
for the agent, the executor); an entry holds the bytes: their ``id`` is not reused."""
_TEXTS_KEPT = 64
_TEXT_SIZES = range(64, 16 * 1024 + 1)  # smaller: not worth it; larger: not kept in memory
_LAST_WITH_ONE_PAD = frozenset("AEIMQUYcgkosw048")  # its two low bits, dropped, are zero
_LAST_WITH_TWO_PADS = frozenset("AQgw")  # its four low bits, dropped, are zero


def _canonical(text: str) -> bool:
    """Whether valid Base64 ``text`` is what encoding its bytes gives back: the bits the
    padding drops are zero (a decoder ignores them; an encoder writes zeros)."""
    if text[-1] != "=":
        return True
    if text[-2] == "=":
        return text[-3] in _LAST_WITH_TWO_PADS
    return text[-2] in _LAST_WITH_ONE_PAD


def _decode_bytes(value: Any) -> bytes:
    if type(value) is not str:
        raise _Invalid(f"expected a Base64 string, got {_kind(value)}")
    try:
        # base64.b64decode(value, validate=True), without its wrapper
        data = _a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):  # ValueError: a character beyond ASCII
        raise _Invalid("not valid Base64") from None
    if len(value) in _TEXT_SIZES and _canonical(value):
        texts = _TEXTS
        if len(texts) >= _TEXTS_KEPT:
            try:  # noqa: SIM105 - contextlib.suppress costs more, on every decode
                del texts[next(iter(texts))]
            except (RuntimeError, StopIteration, KeyError):  # another thread's turn
                pass
        texts[id(data)] = (data, value)
    return data


def _encode_bytes(value: bytes) -> str:
    known = _TEXTS.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    return _b2a_base64(value, newline=False).decode("ascii")  # base64.b64encode's work


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
