"""Typed access to request params; every failure is a -32602 with a precise message.

A handler reads what it needs and gets a value of the right type, or the client gets an
answer such as "invalid params for block_get: 'height' must be an integer >= 0 (got -1)".

Keys are names (str) for object params and positions (int) for array params. A method
registered with `params=("height", "verbose")` receives arrays already mapped to names and
has unknown names refused before the handler runs.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Sequence
from typing import Final, TypeAlias, TypeVar, overload

from node.rpc.errors import InvalidParamsError
from node.rpc.protocol import JsonParams

Key: TypeAlias = builtins.str | builtins.int
_D = TypeVar("_D")


class _Missing:
    def __repr__(self) -> builtins.str:
        return "MISSING"


MISSING: Final = _Missing()
_SHOWN_VALUE_CHARS: Final = 40
_HEX_DIGITS: Final = re.compile("[0-9a-fA-F]*")


def _show(value: object) -> builtins.str:
    """A short rendering of a bad value for an error message."""
    if isinstance(value, builtins.str):
        text = repr(value)
    elif value is None:
        text = "null"
    elif isinstance(value, builtins.bool):
        text = "true" if value else "false"
    elif isinstance(value, builtins.dict):
        text = "an object"
    elif isinstance(value, builtins.list):
        text = "an array"
    else:
        text = repr(value)
    if len(text) > _SHOWN_VALUE_CHARS:
        text = text[: _SHOWN_VALUE_CHARS - 3] + "..."
    return text


class Params:
    """The params of one call. Accessors raise InvalidParamsError; `default` makes a
    parameter optional (`default=None` gives None when it is absent or null)."""

    __slots__ = ("_method", "_value")

    def __init__(self, method: builtins.str, value: JsonParams) -> None:
        self._method = method
        self._value: builtins.dict[builtins.str, object] | builtins.list[object] = (
            {} if value is None else value
        )

    @classmethod
    def for_method(
        cls, method: builtins.str, value: JsonParams, names: Sequence[builtins.str] | None
    ) -> Params:
        """Apply a method's declared parameter names: map an array to them, refuse unknowns."""
        if names is None or value is None:
            return cls(method, value)
        if isinstance(value, builtins.list):
            if len(value) > len(names):
                raise InvalidParamsError(
                    f"invalid params for {method}: takes at most {len(names)} positional "
                    f"parameters ({', '.join(names)}), got {len(value)}"
                )
            return cls(method, builtins.dict(zip(names, value, strict=False)))
        unknown = sorted(set(value) - set(names))
        if unknown:
            accepted = ", ".join(names) if names else "no parameters"
            raise InvalidParamsError(
                f"invalid params for {method}: unknown parameter {unknown[0]!r}; "
                f"accepted: {accepted}"
            )
        return cls(method, value)

    @property
    def method(self) -> builtins.str:
        return self._method

    @property
    def value(self) -> builtins.dict[builtins.str, object] | builtins.list[object]:
        """The params as sent (an empty object when they were omitted)."""
        return self._value

    def fail(self, message: builtins.str) -> InvalidParamsError:
        """An InvalidParamsError prefixed with the method name, for checks a handler adds."""
        return InvalidParamsError(f"invalid params for {self._method}: {message}")

    def has(self, key: Key) -> builtins.bool:
        value = self._value
        if isinstance(value, builtins.dict):
            return isinstance(key, builtins.str) and key in value
        return isinstance(key, builtins.int) and 0 <= key < len(value)

    def _name(self, key: Key) -> builtins.str:
        return repr(key) if isinstance(key, builtins.str) else f"parameter {key}"

    def raw(self, key: Key, default: object = MISSING) -> object:
        """The value as sent (None for JSON null), or `default` if absent."""
        value = self._value
        if isinstance(value, builtins.dict) and not isinstance(key, builtins.str):
            raise self.fail(f"expected an array of positional params, got an object (no {key})")
        if isinstance(value, builtins.list) and not isinstance(key, builtins.int):
            raise self.fail(f"takes named params (an object), not an array (no {key!r})")
        if self.has(key):
            return value[key]  # type: ignore[index]
        if default is MISSING:
            raise self.fail(f"missing required parameter {self._name(key)}")
        return default

    def only(self, *names: builtins.str) -> None:
        """Refuse object params with names other than `names`."""
        if isinstance(self._value, builtins.dict):
            unknown = sorted(set(self._value) - set(names))
            if unknown:
                raise self.fail(
                    f"unknown parameter {unknown[0]!r}; accepted: {', '.join(names) or 'none'}"
                )

    def _present(self, key: Key, default: object) -> tuple[builtins.bool, object]:
        """(True, value) when the key holds a non-null value, else (False, default)."""
        value = self.raw(key, default)
        if value is default and not self.has(key):
            return False, default
        if value is None and default is not MISSING:
            return False, default
        return True, value

    @overload
    def str(
        self, key: Key, *, min_length: builtins.int = 0, max_length: builtins.int | None = None
    ) -> builtins.str: ...
    @overload
    def str(
        self,
        key: Key,
        *,
        default: _D,
        min_length: builtins.int = 0,
        max_length: builtins.int | None = None,
    ) -> builtins.str | _D: ...
    def str(
        self,
        key: Key,
        *,
        default: object = MISSING,
        min_length: builtins.int = 0,
        max_length: builtins.int | None = None,
    ) -> object:
        present, value = self._present(key, default)
        if not present:
            return value
        if not isinstance(value, builtins.str):
            raise self.fail(f"{self._name(key)} must be a string (got {_show(value)})")
        if len(value) < min_length:
            raise self.fail(f"{self._name(key)} must have at least {min_length} characters")
        if max_length is not None and len(value) > max_length:
            raise self.fail(
                f"{self._name(key)} must have at most {max_length} characters (got {len(value)})"
            )
        return value

    @overload
    def int(
        self, key: Key, *, min: builtins.int | None = None, max: builtins.int | None = None
    ) -> builtins.int: ...
    @overload
    def int(
        self,
        key: Key,
        *,
        default: _D,
        min: builtins.int | None = None,
        max: builtins.int | None = None,
    ) -> builtins.int | _D: ...
    def int(
        self,
        key: Key,
        *,
        default: object = MISSING,
        min: builtins.int | None = None,
        max: builtins.int | None = None,
    ) -> object:
        present, value = self._present(key, default)
        if not present:
            return value
        # JSON has one number type: 5.0 is accepted as 5, 5.5 and true are not integers.
        if isinstance(value, builtins.float) and value.is_integer():
            value = builtins.int(value)
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int):
            raise self.fail(f"{self._name(key)} must be an integer (got {_show(value)})")
        if min is not None and value < min:
            raise self.fail(f"{self._name(key)} must be an integer >= {min} (got {value})")
        if max is not None and value > max:
            raise self.fail(f"{self._name(key)} must be an integer <= {max} (got {value})")
        return value

    @overload
    def float(
        self, key: Key, *, min: builtins.float | None = None, max: builtins.float | None = None
    ) -> builtins.float: ...
    @overload
    def float(
        self,
        key: Key,
        *,
        default: _D,
        min: builtins.float | None = None,
        max: builtins.float | None = None,
    ) -> builtins.float | _D: ...
    def float(
        self,
        key: Key,
        *,
        default: object = MISSING,
        min: builtins.float | None = None,
        max: builtins.float | None = None,
    ) -> object:
        present, value = self._present(key, default)
        if not present:
            return value
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int | builtins.float):
            raise self.fail(f"{self._name(key)} must be a number (got {_show(value)})")
        if min is not None and value < min:
            raise self.fail(f"{self._name(key)} must be >= {min} (got {value})")
        if max is not None and value > max:
            raise self.fail(f"{self._name(key)} must be <= {max} (got {value})")
        return builtins.float(value)

    @overload
    def bool(self, key: Key) -> builtins.bool: ...
    @overload
    def bool(self, key: Key, *, default: _D) -> builtins.bool | _D: ...
    def bool(self, key: Key, *, default: object = MISSING) -> object:
        present, value = self._present(key, default)
        if not present:
            return value
        if not isinstance(value, builtins.bool):
            raise self.fail(f"{self._name(key)} must be true or false (got {_show(value)})")
        return value

    @overload
    def hex_bytes(
        self,
        key: Key,
        *,
        length: builtins.int | None = None,
        max_length: builtins.int | None = None,
    ) -> bytes: ...
    @overload
    def hex_bytes(
        self,
        key: Key,
        *,
        default: _D,
        length: builtins.int | None = None,
        max_length: builtins.int | None = None,
    ) -> bytes | _D: ...
    def hex_bytes(
        self,
        key: Key,
        *,
        default: object = MISSING,
        length: builtins.int | None = None,
        max_length: builtins.int | None = None,
    ) -> object:
        """Bytes written as hex digits (either case, optional "0x"); `length` in bytes."""
        present, value = self._present(key, default)
        if not present:
            return value
        size = f"{length} bytes ({2 * length} hex digits)" if length is not None else "bytes"
        if not isinstance(value, builtins.str):
            raise self.fail(
                f"{self._name(key)} must be {size} as a hex string (got {_show(value)})"
            )
        digits = value[2:] if value[:2] in ("0x", "0X") else value
        if len(digits) % 2 or _HEX_DIGITS.fullmatch(digits) is None:
            raise self.fail(f"{self._name(key)} must be {size} as hex digits (got {_show(value)})")
        decoded = bytes.fromhex(digits)
        if length is not None and len(decoded) != length:
            raise self.fail(
                f"{self._name(key)} must be {size} (got {len(decoded)} bytes, "
                f"{len(digits)} hex digits)"
            )
        if max_length is not None and len(decoded) > max_length:
            raise self.fail(
                f"{self._name(key)} must be at most {max_length} bytes (got {len(decoded)})"
            )
        return decoded

    @overload
    def dict(self, key: Key) -> builtins.dict[builtins.str, object]: ...
    @overload
    def dict(self, key: Key, *, default: _D) -> builtins.dict[builtins.str, object] | _D: ...
    def dict(self, key: Key, *, default: object = MISSING) -> object:
        present, value = self._present(key, default)
        if not present:
            return value
        if not isinstance(value, builtins.dict):
            raise self.fail(f"{self._name(key)} must be an object (got {_show(value)})")
        return value

    @overload
    def list(
        self, key: Key, *, max_length: builtins.int | None = None
    ) -> builtins.list[object]: ...
    @overload
    def list(
        self, key: Key, *, default: _D, max_length: builtins.int | None = None
    ) -> builtins.list[object] | _D: ...
    def list(
        self, key: Key, *, default: object = MISSING, max_length: builtins.int | None = None
    ) -> object:
        present, value = self._present(key, default)
        if not present:
            return value
        if not isinstance(value, builtins.list):
            raise self.fail(f"{self._name(key)} must be an array (got {_show(value)})")
        if max_length is not None and len(value) > max_length:
            raise self.fail(
                f"{self._name(key)} must have at most {max_length} items (got {len(value)})"
            )
        return value

    def __repr__(self) -> builtins.str:
        return f"Params({self._method!r}, {self._value!r})"
