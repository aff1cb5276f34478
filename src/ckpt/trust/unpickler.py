"""The data-only unpickler: builds what a file from anyone else describes,
and nothing else happens.

A pickle is a program for a stack machine, and the C unpickler runs every
instruction as the file says: BUILD looks `__setstate__` up on the instance
(so a state dict that stored one makes the next BUILD call it), APPENDS
calls whatever `extend` the instance has, REDUCE calls whatever is on the
stack. Predicting from the opcodes what it will do missed cases twice.
This machine runs the instructions itself, with the real objects in hand,
and checks each one as it happens:

- a global is what the audit (`policy`) admitted for that exact name;
- REDUCE calls only an admitted class or function (through its argument
  guard, `guards`), never an object the file computed; a reviewed function
  is handed out as a `_Callee`, which can be called but never stored, so no
  function the file names reaches the object it builds (a catalog
  constructor given one, an executor's initializer, gets None instead, and
  the load says so), unless the user trusts that exact name;
- `functools.partial` exists only inside the machine, as a call to come;
- BUILD, APPENDS, SETITEMS and ADDITEMS reach only objects this load
  created, through methods looked up on their *class*; a state key that is
  a dunder or names a method or property of the class is refused;
- tuples nest no deeper than CPython can hash; numbers and tuples that
  share one hash value are refused past a flood's worth (`flood`).

Nothing else runs: no getattr, no bound method, no code from the file.
What does run (an admitted class's own `__setstate__`, a guarded
reconstructor) runs in the sandbox (`sandbox`): no file written, no
connection, no thread or process started, the process left as it was.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import struct
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ckpt.errors import (
    CheckpointError,
    MalformedPickleError,
    UnsafeCheckpointError,
    one_line,
    printable,
)
from ckpt.objects.opcodes import WIDTHS
from ckpt.trust import sandbox
from ckpt.trust.analysis import CALL, INSTANCE_CALLED, NEW, NEW_ARGS, VALUE
from ckpt.trust.entries import CLASS, FUNCTION
from ckpt.trust.flood import MAX_COLLISIONS
from ckpt.trust.guards import (
    GUARDS,
    SINGLETON_TYPES,
    TAKES_FUNCTIONS,
    Context,
    guard_name,
)
from ckpt.trust.policy import Admission, Trust, admit

LINE_LIMIT = 1 << 20
"""The longest text argument read (protocol 0's INT, FLOAT, GLOBAL ... lines,
which ckpt never writes): a longer one is malformed."""

MAX_TUPLE_DEPTH = 10_000
"""Tuples nested deeper than this are refused: hashing one recurses in C
without a limit and crashes the interpreter (around 100,000 levels).
pickle itself cannot write more than about `sys.getrecursionlimit()`."""


def refused(what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(f"data.pkl {what}; ckpt refuses it")


class _Callee:
    """A reviewed function as the stack holds it: callable by REDUCE, never
    stored in what the load builds."""

    __slots__ = ("admission", "call")

    def __init__(self, admission: Admission, call: Callable[..., Any]) -> None:
        self.admission = admission
        self.call = call


class _ClassValue:
    """A class ckpt did not review, trusted only with its package, as the
    stack holds it: instantiated (NEWOBJ), called where its admission
    allows, handed to the guarded reconstructor that builds it, but never
    stored where whatever holds it (an executor's initializer, a __del__
    that calls an attribute) could call it later, outside the sandbox."""

    __slots__ = ("admission", "cls")

    def __init__(self, admission: Admission, cls: type) -> None:
        self.admission = admission
        self.cls = cls


class _CallArgs(tuple):  # type: ignore[type-arg]
    """A tuple holding a `_Callee` or a `_ClassValue`: an argument list for a call, nothing else."""

    __slots__ = ()


class _Pending:
    """`functools.partial(f, ...)` as the machine holds it: a call to come."""

    __slots__ = ("callee", "args", "keywords")

    def __init__(self, callee: Any) -> None:
        self.callee = callee
        self.args: tuple[Any, ...] = ()
        self.keywords: dict[str, Any] = {}


class _Nesting:
    """How deep the tuples on the machine's stack nest, whoever made them.

    Hashing a tuple recurses in C without a limit (a dict key nested 100,000
    deep crashes the interpreter), so no tuple the load handles may nest
    deeper than MAX_TUPLE_DEPTH. The machine's own TUPLE opcodes know the
    depth of what they build; a tuple a call returned (`tuple([t])` wraps `t`
    one level deeper) is walked once, iteratively, and remembered. The newest
    tuple the machine made is kept aside, not in the table: a chain of
    TUPLE1s then costs no lookup."""

    __slots__ = ("known", "kept", "last", "last_level")

    def __init__(self) -> None:
        self.known: dict[int, int] = {}
        """Depths of the tuples looked at, by id."""
        self.kept: list[Any] = []
        """Those tuples, kept alive so their ids stay theirs."""
        self.last: Any = None
        self.last_level = 0

    def level(self, item: tuple[Any, ...]) -> int:
        """The depth of a non-empty tuple (of any tuple type): 1 holds no non-empty tuple."""
        if item is self.last:
            return self.last_level
        found = self.known.get(id(item))
        return found if found is not None else self._walk(item)

    def made(self, made: tuple[Any, ...], level: int) -> None:
        if level >= MAX_TUPLE_DEPTH:
            raise refused(f"nests tuples more than {MAX_TUPLE_DEPTH:,} levels deep")
        self.last, self.last_level = made, level

    def _walk(self, root: tuple[Any, ...]) -> int:
        """Depth-first without recursion; `tuple.__iter__`, never a subclass's own code."""
        known, pending = self.known, [root]
        while pending:
            node = pending[-1]
            if id(node) in known:
                pending.pop()
                continue
            deepest, missing = 0, False
            for item in tuple.__iter__(node):
                if _nests(item):
                    level = self.last_level if item is self.last else known.get(id(item))
                    if level is None:
                        pending.append(item)
                        missing = True
                    elif level > deepest:
                        deepest = level
            if missing:
                continue
            pending.pop()
            if deepest + 1 >= MAX_TUPLE_DEPTH:
                raise refused(f"nests tuples more than {MAX_TUPLE_DEPTH:,} levels deep")
            known[id(node)] = deepest + 1
            self.kept.append(node)
        return known[id(root)]


_PLAIN = frozenset({int, float, str, bytes, bool, type(None), list, dict, set, frozenset, bytearray, complex})


def _nests(item: Any) -> bool:
    """A non-empty tuple, of tuple or a subclass (a namedtuple hashes as a tuple)."""
    kind = type(item)
    if kind is tuple:
        return bool(item)
    return kind not in _PLAIN and issubclass(kind, tuple) and tuple.__len__(item) > 0


_NOT_DATA = frozenset({_Callee, _ClassValue, _CallArgs, _Pending})
_TOKENS = (_Callee, _ClassValue)
_CODE_TYPES = frozenset({types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.MethodWrapperType,
                         types.MethodDescriptorType, types.WrapperDescriptorType, types.ClassMethodDescriptorType,
                         functools.partial, staticmethod, classmethod, property})
_MISSING = object()
_PARTIAL = "functools:partial"
_GETATTR = "builtins:getattr"
_SINGLETON = Admission("builtins:NoneType", None, CLASS, VALUE | CALL, False, None,
                       "reviewed: the type of None, NotImplemented or Ellipsis, as type() returns it; calling it "
                       "returns the singleton")


class DataUnpickler:
    """One load of `data` under the admissions the audit made."""

    def __init__(self, data: Any, admissions: dict[str, Admission], trust: Trust, context: Context,
                 buffers: Iterable[Any] | None = None) -> None:
        self.raw = data if isinstance(data, (bytes, bytearray)) else bytes(data)
        self.trust = trust
        self.context = context
        self.buffers: Iterator[Any] = iter(buffers if buffers is not None else ())
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.fresh: dict[int, Any] = {}
        """Objects this load created, by id (and kept alive, so ids stay theirs)."""
        self.nesting = _Nesting()
        self.floods = context.floods
        self.warnings = context.warnings
        self.checking = False
        """Whether anything not data exists yet (until then, nothing needs checking)."""
        self._handed: dict[str, Any] = {}
        self._classes: dict[int, Admission] = {}
        """Admitted classes (and functions stored as values), by id: what calls and NEWOBJ may use."""
        self._callees: dict[int, _Callee] = {
            id(kind): _Callee(_SINGLETON, kind) for kind in SINGLETON_TYPES}
        """What calling an object means, by the object's id (a _Callee per admitted callable)."""
        self._admissions = dict(admissions)
        self._dispatch = self._table()

    # --- the loop ---------------------------------------------------------

    def load(self) -> Any:
        raw, dispatch = self.raw, self._dispatch
        position, size = 0, len(raw)
        try:
            while position < size:
                handler = dispatch[raw[position]]
                if handler is None:
                    raise _malformed(position, f"unknown opcode 0x{raw[position]:02x}")
                position = handler(position + 1)
                if position < 0:
                    result = self._pop()
                    self._data(result, "as the loaded object")
                    return result
        except _Short:
            raise _malformed(position, "the stream is cut short") from None
        except IndexError:
            raise _malformed(position, "the stack or the memo has no such entry") from None
        raise _malformed(size, "the stream ends without STOP")

    def _table(self) -> list[Callable[[int], int] | None]:
        table: list[Callable[[int], int] | None] = [None] * 256
        for code, entry in enumerate(WIDTHS):
            if entry is not None:
                table[code] = getattr(self, "_op_" + entry[0].lower(), None) or self._op_refused
        return table

    # --- reading arguments --------------------------------------------------

    def _bytes(self, start: int, width: int) -> tuple[bytes, int]:
        end = start + width
        if end > len(self.raw):
            raise _Short()
        return bytes(self.raw[start:end]), end

    def _sized(self, start: int, length_width: int) -> tuple[bytes, int]:
        length, start = self._bytes(start, length_width)
        return self._bytes(start, int.from_bytes(length, "little"))

    def _line(self, start: int) -> tuple[bytes, int]:
        end = self.raw.find(b"\n", start, start + LINE_LIMIT)
        if end < 0:
            raise _malformed(start - 1, "a text argument has no end of line")
        return bytes(self.raw[start:end]), end + 1

    # --- the stack ----------------------------------------------------------

    def _pop_mark(self) -> list[Any]:
        if not self.marks:
            raise _malformed(None, "no MARK before an opcode that needs one")
        cut = self.marks.pop()
        items = self.stack[cut:]
        del self.stack[cut:]
        return items

    def _pop(self) -> Any:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise _malformed(None, "stack underflow")
        return self.stack.pop()

    def _top(self) -> Any:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise _malformed(None, "stack underflow")
        return self.stack[-1]

    def _data(self, value: Any, where: str) -> None:
        if self.checking and type(value) in _NOT_DATA:
            raise refused(f"stores {self._describe(value)} {where}")

    def _all_data(self, values: Iterable[Any], where: str) -> None:
        if self.checking:
            for value in values:
                if type(value) in _NOT_DATA:
                    raise refused(f"stores {self._describe(value)} {where}")

    @staticmethod
    def _describe(value: Any) -> str:
        if type(value) is _Callee:
            return f"the function {value.admission.name} as a value (trust that exact name to allow it)"
        if type(value) is _ClassValue:
            return (f"the class {value.admission.name} as a value (trusted with its package to be rebuilt, not held: "
                    "trust that exact name to allow it)")
        if type(value) is _Pending:
            return "a functools.partial as a value"
        return "a function as a value"

    def _fresh(self, obj: Any) -> Any:
        self.fresh[id(obj)] = obj
        return obj

    # --- constants ----------------------------------------------------------

    def _op_proto(self, at: int) -> int:
        raw, at = self._bytes(at, 1)
        if raw[0] > 5:
            raise _malformed(at - 2, f"unsupported pickle protocol {raw[0]}")
        return at

    def _op_frame(self, at: int) -> int:
        self._bytes(at, 8)
        return at + 8

    def _op_none(self, at: int) -> int:
        self.stack.append(None)
        return at

    def _op_newtrue(self, at: int) -> int:
        self.stack.append(True)
        return at

    def _op_newfalse(self, at: int) -> int:
        self.stack.append(False)
        return at

    def _op_int(self, at: int) -> int:
        line, at = self._line(at)
        value: Any = {b"00": False, b"01": True}.get(line)
        self.stack.append(value if value is not None else self._int_text(line))
        return at

    def _int_text(self, text: bytes) -> int:
        try:
            return self._counted(int(text.rstrip(b"L")))
        except ValueError as exc:
            raise refused(f"writes an integer that cannot be read ({one_line(str(exc))})") from None

    def _op_long(self, at: int) -> int:
        line, at = self._line(at)
        self.stack.append(self._int_text(line))
        return at

    def _op_binint(self, at: int) -> int:
        raw, at = self._bytes(at, 4)
        self.stack.append(self._counted(int.from_bytes(raw, "little", signed=True)))
        return at

    def _op_binint1(self, at: int) -> int:
        raw, at = self._bytes(at, 1)
        self.stack.append(raw[0])
        return at

    def _op_binint2(self, at: int) -> int:
        raw, at = self._bytes(at, 2)
        self.stack.append(int.from_bytes(raw, "little"))
        return at

    def _op_long1(self, at: int) -> int:
        raw, at = self._sized(at, 1)
        self.stack.append(self._counted(int.from_bytes(raw, "little", signed=True)))
        return at

    def _op_long4(self, at: int) -> int:
        raw, at = self._sized(at, 4)
        self.stack.append(self._counted(int.from_bytes(raw, "little", signed=True)))
        return at

    def _op_float(self, at: int) -> int:
        line, at = self._line(at)
        try:
            self.stack.append(float(line))
        except ValueError:
            raise refused("writes a float that cannot be read") from None
        return at

    def _op_binfloat(self, at: int) -> int:
        raw, at = self._bytes(at, 8)
        self.stack.append(struct.unpack(">d", raw)[0])
        return at

    def _counted(self, number: int) -> int:
        """Integers that might key a dict: past small ones, counted for hash flooding."""
        if not -(1 << 30) < number < (1 << 30) and self.floods.add(number):
            raise refused(f"builds more than {MAX_COLLISIONS:,} distinct numbers with one hash value (a "
                          "hash-flooding dict or set)")
        return number

    # --- text and bytes -----------------------------------------------------

    def _op_string(self, at: int) -> int:
        line, at = self._line(at)
        if len(line) < 2 or line[0] != line[-1] or line[0] not in b"\"'":
            raise _malformed(at, "STRING is not quoted")
        self.stack.append(self._ascii(codecs.escape_decode(line[1:-1])[0]))
        return at

    def _op_binstring(self, at: int) -> int:
        raw, at = self._sized(at, 4)
        self.stack.append(self._ascii(raw))
        return at

    def _op_short_binstring(self, at: int) -> int:
        raw, at = self._sized(at, 1)
        self.stack.append(self._ascii(raw))
        return at

    @staticmethod
    def _ascii(raw: bytes) -> str:
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise refused("writes a Python 2 string that is not ASCII") from None

    def _op_unicode(self, at: int) -> int:
        line, at = self._line(at)
        self.stack.append(self._text(line, "raw-unicode-escape"))
        return at

    def _op_short_binunicode(self, at: int) -> int:
        raw, at = self._sized(at, 1)
        self.stack.append(self._text(raw, "utf-8"))
        return at

    def _op_binunicode(self, at: int) -> int:
        raw, at = self._sized(at, 4)
        self.stack.append(self._text(raw, "utf-8"))
        return at

    def _op_binunicode8(self, at: int) -> int:
        raw, at = self._sized(at, 8)
        self.stack.append(self._text(raw, "utf-8"))
        return at

    @staticmethod
    def _text(raw: bytes, encoding: str) -> str:
        try:
            if encoding == "utf-8":
                return raw.decode(encoding, "surrogatepass")
            return codecs.raw_unicode_escape_decode(raw)[0]  # the codec itself: looking it up by name imports it
        except UnicodeDecodeError:
            raise refused("writes text that cannot be decoded") from None

    def _op_short_binbytes(self, at: int) -> int:
        raw, at = self._sized(at, 1)
        self.stack.append(raw)
        return at

    def _op_binbytes(self, at: int) -> int:
        raw, at = self._sized(at, 4)
        self.stack.append(raw)
        return at

    def _op_binbytes8(self, at: int) -> int:
        raw, at = self._sized(at, 8)
        self.stack.append(raw)
        return at

    def _op_bytearray8(self, at: int) -> int:
        raw, at = self._sized(at, 8)
        self.stack.append(self._fresh(bytearray(raw)))
        return at

    def _op_next_buffer(self, at: int) -> int:
        try:
            self.stack.append(next(self.buffers))
        except StopIteration:
            raise refused("asks for more out-of-band buffers than the file holds") from None
        return at

    def _op_readonly_buffer(self, at: int) -> int:
        with memoryview(self._top()) as view:
            if not view.readonly:
                self.stack[-1] = view.toreadonly()
        return at

    # --- the stack and the memo ---------------------------------------------

    def _op_mark(self, at: int) -> int:
        self.marks.append(len(self.stack))
        return at

    def _op_pop(self, at: int) -> int:
        self._pop()
        return at

    def _op_pop_mark(self, at: int) -> int:
        self._pop_mark()
        return at

    def _op_dup(self, at: int) -> int:
        self.stack.append(self._top())
        return at

    def _op_stop(self, at: int) -> int:
        return -1

    def _remember(self, index: int) -> None:
        self.memo[index] = self._top()

    def _recall(self, index: int) -> None:
        try:
            self.stack.append(self.memo[index])
        except KeyError:
            raise _malformed(None, f"memo entry {index} was never stored") from None

    def _op_put(self, at: int) -> int:
        line, at = self._line(at)
        if not line.isdigit():
            raise _malformed(at, "PUT's index is not a number")
        self._remember(int(line))
        return at

    def _op_binput(self, at: int) -> int:
        raw, at = self._bytes(at, 1)
        self._remember(raw[0])
        return at

    def _op_long_binput(self, at: int) -> int:
        raw, at = self._bytes(at, 4)
        self._remember(int.from_bytes(raw, "little"))
        return at

    def _op_memoize(self, at: int) -> int:
        self._remember(len(self.memo))
        return at

    def _op_get(self, at: int) -> int:
        line, at = self._line(at)
        if not line.isdigit():
            raise _malformed(at, "GET's index is not a number")
        self._recall(int(line))
        return at

    def _op_binget(self, at: int) -> int:
        raw, at = self._bytes(at, 1)
        self._recall(raw[0])
        return at

    def _op_long_binget(self, at: int) -> int:
        raw, at = self._bytes(at, 4)
        self._recall(int.from_bytes(raw, "little"))
        return at

    # --- containers ---------------------------------------------------------

    def _tuple(self, items: list[Any]) -> tuple[Any, ...]:
        deepest, callee, nesting = 0, False, self.nesting
        for item in items:
            kind = type(item)
            if kind is _Callee or kind is _ClassValue:
                callee = True
            elif kind in _NOT_DATA:
                if self.checking:
                    raise refused(f"puts {self._describe(item)} in a tuple")
            elif _nests(item):
                level = nesting.level(item)
                if level > deepest:
                    deepest = level
        made: tuple[Any, ...] = _CallArgs(items) if callee else tuple(items)
        nesting.made(made, deepest + 1)
        return made

    def _op_empty_tuple(self, at: int) -> int:
        self.stack.append(())
        return at

    def _op_tuple(self, at: int) -> int:
        self.stack.append(self._tuple(self._pop_mark()))
        return at

    def _op_tuple1(self, at: int) -> int:
        stack = self.stack
        if len(stack) <= (self.marks[-1] if self.marks else 0):
            raise _malformed(None, "stack underflow")
        item = stack[-1]
        if type(item) is tuple and item:  # the hot case of a deep nest: one tuple in another
            nesting = self.nesting
            made = stack[-1] = (item,)
            nesting.made(made, (nesting.last_level if item is nesting.last else nesting.level(item)) + 1)
        else:
            stack[-1] = self._tuple([item])
        return at

    def _op_tuple2(self, at: int) -> int:
        return self._last(at, 2)

    def _op_tuple3(self, at: int) -> int:
        return self._last(at, 3)

    def _last(self, at: int, count: int) -> int:
        """TUPLE2, TUPLE3: the top `count` items become one tuple."""
        stack = self.stack
        cut = len(stack) - count
        if cut < (self.marks[-1] if self.marks else 0):
            raise _malformed(None, "stack underflow")
        stack[cut:] = (self._tuple(stack[cut:]),)
        return at

    def _op_empty_list(self, at: int) -> int:
        self.stack.append([])
        return at

    def _op_list(self, at: int) -> int:
        items = self._pop_mark()
        self._all_data(items, "in a list")
        self.stack.append(items)
        return at

    def _op_empty_dict(self, at: int) -> int:
        self.stack.append({})
        return at

    def _op_dict(self, at: int) -> int:
        items = self._pop_mark()
        if len(items) % 2:
            raise _malformed(at, "DICT of an odd number of items")
        made: dict[Any, Any] = {}
        self._fill(made, items)
        self.stack.append(made)
        return at

    def _op_empty_set(self, at: int) -> int:
        self.stack.append(set())
        return at

    def _op_frozenset(self, at: int) -> int:
        items = self._pop_mark()
        self._keys(items, "in a frozenset")
        self.stack.append(frozenset(items))
        return at

    def _keys(self, keys: Iterable[Any], where: str) -> None:
        """Checks what will be hashed: data, and no flood of one hash value."""
        for key in keys:
            kind = type(key)
            if kind is str or kind is bytes or kind is int:
                continue  # str and bytes hashes are randomized; big integers were counted when read
            if self.checking and kind in _NOT_DATA:
                raise refused(f"puts {self._describe(key)} {where}")
            if kind is tuple or kind is float or kind is complex:
                if self.floods.add(key):
                    raise refused(f"builds more than {MAX_COLLISIONS:,} distinct keys with one hash value (a "
                                  "hash-flooding dict or set)")

    def _filled(self, target: Any, method: str) -> Callable[..., Any]:
        """`method` of the target's class (never of the instance: a state
        dict could have stored one there), for an object this load made."""
        if id(target) not in self.fresh:
            raise refused(f"adds items to {_kind(target)}, which this load did not create")
        found = getattr(type(target), method, None)
        if found is None:
            raise refused(f"adds items to {_kind(target)}, which has no {method}()")
        return functools.partial(found, target)

    def _op_append(self, at: int) -> int:
        item = self._pop()
        self._append(self._top(), [item])
        return at

    def _op_appends(self, at: int) -> int:
        items = self._pop_mark()
        self._append(self._top(), items)
        return at

    def _append(self, target: Any, items: list[Any]) -> None:
        self._all_data(items, "in a list")
        if type(target) is list:
            target.extend(items)
            return
        try:
            extend = self._filled(target, "extend")
        except UnsafeCheckpointError:
            append = self._filled(target, "append")
            for item in items:
                append(item)
            return
        extend(items)

    def _op_setitem(self, at: int) -> int:
        value = self._pop()
        key = self._pop()
        self._fill(self._top(), [key, value])
        return at

    def _op_setitems(self, at: int) -> int:
        items = self._pop_mark()
        if len(items) % 2:
            raise _malformed(at, "SETITEMS of an odd number of items")
        self._fill(self._top(), items)
        return at

    def _fill(self, target: Any, items: list[Any]) -> None:
        keys = items[0::2]
        self._keys(keys, "as a key")
        self._all_data(items[1::2], "in a dict")
        if type(target) is dict:
            target.update(zip(keys, items[1::2]))
            return
        setitem = self._filled(target, "__setitem__")
        for key, value in zip(keys, items[1::2]):
            setitem(key, value)

    def _op_additems(self, at: int) -> int:
        items = self._pop_mark()
        self._keys(items, "in a set")
        target = self._top()
        if type(target) is set:
            target.update(items)
        else:
            add = self._filled(target, "add")
            for item in items:
                add(item)
        return at

    # --- globals and calls --------------------------------------------------

    def _op_global(self, at: int) -> int:
        module, at = self._line(at)
        qualname, at = self._line(at)
        self.stack.append(self._global(module.decode("utf-8", "replace"), qualname.decode("utf-8", "replace")))
        return at

    def _op_stack_global(self, at: int) -> int:
        qualname, module = self._pop(), self._pop()
        if type(module) is not str or type(qualname) is not str:
            raise refused("names a global with something other than text")
        self.stack.append(self._global(module, qualname))
        return at

    def _global(self, module: str, qualname: str) -> Any:
        name = f"{module}:{qualname}"
        handed = self._handed.get(name, _MISSING)
        if handed is not _MISSING:
            return handed
        admission = self._admissions.get(name)
        if admission is None:
            found = admit(name, self.trust)
            if not isinstance(found, Admission):
                raise UnsafeCheckpointError(f"data.pkl asks for {printable(name)}, which {found.why}")
            admission = dataclasses.replace(found, guard=guard_name(found.obj, found.guard))
        obj = admission.obj
        if admission.kind == CLASS:
            self._classes[id(obj)] = admission
            handed = obj if _storable(admission) else _ClassValue(admission, obj)
            self.checking = self.checking or handed is not obj
        elif admission.kind == FUNCTION:
            call = GUARDS[admission.guard](obj, self.context) if admission.guard else obj
            callee = _Callee(admission, call)
            if admission.allowed & VALUE:
                self._classes[id(obj)] = admission  # a value too: calls of it are found by identity
                handed = obj
            else:
                self.checking = True
                handed = callee
            self._callees[id(obj)] = callee
        else:
            handed = obj
        self._handed[name] = handed
        return handed

    def _op_reduce(self, at: int) -> int:
        args = self._pop()
        func = self._pop()
        if not _is(args, tuple):
            raise refused("calls something with arguments that are not a tuple")
        self.stack.append(self._call(func, args, {}))
        return at

    def _call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        kind = type(func)
        if kind is _Pending:
            return self._call(func.callee, (*func.args, *args), {**func.keywords, **kwargs})
        if kind is not _Callee:
            func = self._callee_of(_unwrapped(func))
        admission = func.admission
        if admission.name == _PARTIAL:
            return self._pending(args)
        if admission.name == _GETATTR:
            return self._class_attribute(args)
        args = self._arguments(admission, args)
        if kwargs:
            self._all_data(kwargs.values(), "as a keyword argument")
        self._bounded(admission, args, kwargs)
        try:
            if admission.source == f"--trust {admission.name}":
                with sandbox.trusted():
                    result = func.call(*args, **kwargs)
            else:
                result = func.call(*args, **kwargs)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"data.pkl: {admission.name} raised {type(exc).__name__}: "
                                  f"{one_line(str(exc))}") from None
        if not admission.source.startswith(f"--trust {admission.name}"):
            self._made_by(admission, result)
        if _nests(result):  # tuple([t]) nests t one level deeper, out of the opcodes' sight
            self.nesting.level(result)
        if admission.fresh:
            self.fresh[id(result)] = result
        return result

    def _bounded(self, admission: Admission, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A range is a few bytes in the file and as many items as it says to
        whatever iterates it (a deque, a set, bytes): one longer than the
        file could hold is refused as an argument (it may still be a value)."""
        for arg in (*args, *kwargs.values()):
            if type(arg) is range and _span(arg) > self.context.limit:
                raise refused(f"passes {admission.name} a range of {_span(arg):,} items, more than the file holds")

    @staticmethod
    def _made_by(admission: Admission, result: Any) -> None:
        """What a call returned is what its callee makes: a class makes its
        own instances (never a function, a bound method or another class's
        object, whatever its __new__ says), and no reviewed function returns
        code. Only a name trusted exactly may return anything."""
        kind = type(result)
        if kind in _CODE_TYPES and not admission.source.startswith("--trust"):
            raise refused(f"gets a function from {admission.name}")
        cls = admission.obj
        if admission.kind == CLASS and _is(cls, type) and not _is(result, cls):
            raise refused(f"calls {admission.name}, which returned a {_qualified(kind)} instead of its own instance")

    def _callee_of(self, func: Any) -> _Callee:
        """What calling `func` means: an admitted class's constructor (through
        its guard), an admitted function stored as a value, or an instance
        this load made of a class whose instances may be called."""
        found = self._callees.get(id(func))
        if found is not None:
            return found
        admission = self._classes.get(id(func)) if _is(func, type) else None
        if admission is not None:
            if not admission.allowed & CALL:
                raise refused(f"calls {admission.name} with arguments, which ckpt never allows for it "
                              f"({admission.source}); only its own pickling's ways of making one")
            guard = admission.handed
            found = self._callees[id(func)] = _Callee(admission, GUARDS[guard](func, self.context) if guard else func)
            return found
        owner = self._classes.get(id(type(func)))
        if owner is not None and id(func) in self.fresh and owner.allowed & INSTANCE_CALLED:
            return _Callee(owner, func)
        raise refused(f"calls {_kind(func)}, which is not a class or function it names and ckpt admits")

    def _arguments(self, admission: Admission, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The call's arguments. A guard is handed the classes among them
        (it checks each is one this load admitted) and, where it checks them
        by identity, the reviewed functions (a tensor rebuilt by
        torch.as_strided). A catalog constructor that would keep a function
        or a class the file may not call (an executor's initializer, a
        defaultdict's factory) gets None instead; anything else is refused."""
        if type(args) is not _CallArgs:
            return args
        if admission.guard:
            args = tuple(a.cls if type(a) is _ClassValue else a for a in args)
            if admission.guard in TAKES_FUNCTIONS:
                return tuple(a.admission.obj if type(a) is _Callee else a for a in args)
            if not any(type(a) is _Callee for a in args):
                return args
        names = ", ".join(a.admission.name for a in args if type(a) in _TOKENS)
        if admission.kind == CLASS and admission.source.startswith("reviewed"):
            self.warnings.append(f"{admission.name} was given {names} from the file, which it would call: restored "
                                 "without it (None); trust that exact name to keep it")
            return tuple(None if type(a) in _TOKENS else a for a in args)
        raise refused(f"passes {names} to {admission.name} (a function or class from the file reaches no caller "
                      "unless you trust that exact name)")

    def _class_attribute(self, args: tuple[Any, ...]) -> Any:
        """getattr(Class, "name"), as pickle names a method of a class
        (zoneinfo's `ZoneInfo._unpickle`): the global `module:Class.name`,
        admitted or refused as that name. Never an attribute of an object the
        file built: no bound method loads as data."""
        args = tuple(_unwrapped(a) for a in args)
        if len(args) != 2 or not _is(args[0], type) or type(args[1]) is not str:
            what = f"the attribute {printable(str(args[1]))!r} of {_kind(args[0])}" if len(args) == 2 else "getattr"
            raise refused(f"takes {what} (no bound method loads as data; trust the signer to load it whole)")
        cls, name = args
        if id(cls) not in self._classes:
            raise refused(f"takes {name!r} of {_kind(cls)}, which it did not name")
        return self._global(cls.__module__, f"{cls.__qualname__}.{name}")

    def _pending(self, args: tuple[Any, ...]) -> _Pending:
        """functools.partial(f, *args): kept as a call to come, of an admitted callable."""
        if not args:
            raise refused("builds a functools.partial of nothing")
        first = args[0]
        callee = first if type(first) is _Callee else self._callee_of(_unwrapped(first))
        pending = _Pending(callee)
        pending.args = tuple(args[1:])
        self._all_data(pending.args, "as a partial's argument")
        self.checking = True
        self.fresh[id(pending)] = pending
        return pending

    def _build_pending(self, pending: _Pending, state: Any) -> None:
        """partial.__setstate__((func, args, keywords, dict)), for the call to come."""
        if not (_is(state, tuple) and len(state) == 4):
            raise refused("gives a functools.partial a state that is not (func, args, keywords, dict)")
        func, args, keywords, extra = state
        same = func is pending.callee or (type(func) is not _Callee and self._callee_of(_unwrapped(func)).call
                                          is pending.callee.call)
        if not same or not _is(args, tuple) or not (keywords is None or _is(keywords, dict)) or extra:
            raise refused("gives a functools.partial a state that changes its function or holds attributes")
        self._all_data(args, "as a partial's argument")
        self._all_data((keywords or {}).values(), "as a partial's argument")
        pending.args, pending.keywords = tuple(args), dict(keywords or {})

    def _new(self, cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cls = _unwrapped(cls)
        admission = self._classes.get(id(cls)) if _is(cls, type) else None
        if admission is None or admission.kind != CLASS:
            raise refused(f"instantiates {_kind(cls)}, which is not a class it names and ckpt admits")
        needed = NEW_ARGS if args or kwargs else NEW
        if not admission.allowed & needed:
            raise refused(f"instantiates {admission.name} with arguments, which ckpt never allows for it "
                          f"({admission.source})")
        self._all_data(args, "as an argument")
        self._all_data(kwargs.values(), "as an argument")
        try:
            made = cls.__new__(cls, *args, **kwargs)
        except Exception as exc:
            raise CheckpointError(f"data.pkl: making a {admission.name} raised {type(exc).__name__}: "
                                  f"{one_line(str(exc))}") from None
        if not _is(made, cls):
            raise refused(f"instantiates {admission.name}, whose __new__ returned something else")
        if _nests(made):  # a namedtuple of the file's items
            self.nesting.level(made)
        return self._fresh(made)

    def _op_newobj(self, at: int) -> int:
        args = self._pop()
        cls = self._pop()
        if not _is(args, tuple):
            raise refused("instantiates a class with arguments that are not a tuple")
        self.stack.append(self._new(cls, args, {}))
        return at

    def _op_newobj_ex(self, at: int) -> int:
        kwargs = self._pop()
        args = self._pop()
        cls = self._pop()
        if not _is(args, tuple) or type(kwargs) is not dict:
            raise refused("instantiates a class with arguments that are not a tuple and a dict")
        self.stack.append(self._new(cls, args, kwargs))
        return at

    def _op_inst(self, at: int) -> int:
        module, at = self._line(at)
        qualname, at = self._line(at)
        cls = self._global(module.decode("utf-8", "replace"), qualname.decode("utf-8", "replace"))
        self._instantiate(cls, self._pop_mark())
        return at

    def _op_obj(self, at: int) -> int:
        items = self._pop_mark()
        if not items:
            raise _malformed(at, "OBJ without a class")
        self._instantiate(items[0], items[1:])
        return at

    def _instantiate(self, cls: Any, args: list[Any]) -> None:
        """pickle's protocol 0/1 instantiation: `cls(*args)` when there are
        arguments (or the class asks for them), else `cls.__new__(cls)`."""
        cls = _unwrapped(cls)
        if args or not _is(cls, type) or hasattr(cls, "__getinitargs__"):
            made = self._call(cls, self._tuple(args), {})
            self.fresh[id(made)] = made
        else:
            made = self._new(cls, (), {})
        self.stack.append(made)

    def _op_build(self, at: int) -> int:
        state = self._pop()
        inst = self._top()
        if type(inst) is _Pending:
            self._build_pending(inst, state)
            return at
        if id(inst) not in self.fresh:
            raise refused(f"gives state to {_kind(inst)}, which this load did not create (a class, a function or "
                          "an object of the running process)")
        self._data(state, "as state")
        cls = type(inst)
        setstate = getattr(cls, "__setstate__", None)
        if setstate is not None:
            self._run(setstate, inst, state, cls)
            return at
        slots = None
        if _is(state, tuple) and len(state) == 2:
            state, slots = state
        if state:
            if type(state) is not dict:
                raise refused(f"gives a {_qualified(cls)} state that is not a dict")
            self._check_keys(cls, state)
            try:
                namespace = inst.__dict__
            except AttributeError:
                raise refused(f"gives a {_qualified(cls)}, which has no attributes, a state dict") from None
            for key, value in state.items():
                namespace[sys.intern(key)] = value  # as pickle does: attribute names are interned
        if slots:
            if type(slots) is not dict:
                raise refused(f"gives a {_qualified(cls)} slot state that is not a dict")
            self._check_keys(cls, slots)
            for key, value in slots.items():
                setattr(inst, key, value)
        return at

    def _run(self, setstate: Any, inst: Any, state: Any, cls: type) -> None:
        try:
            setstate(inst, state)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"data.pkl: {_qualified(cls)}.__setstate__ raised {type(exc).__name__}: "
                                  f"{one_line(str(exc))}") from None

    def _check_keys(self, cls: type, state: dict[Any, Any]) -> None:
        """No key of a state may be a dunder or shadow the class's behaviour."""
        for key in state:
            if type(key) is not str:
                raise refused(f"gives a {_qualified(cls)} an attribute named by {_kind(key)}")
            if key[:2] == "__" and key[-2:] == "__":
                raise refused(f"gives a {_qualified(cls)} the attribute {printable(key)}, a dunder name")
            attribute = _class_attribute(cls, key)
            if attribute is not _MISSING and _behaviour(attribute):
                raise refused(f"gives a {_qualified(cls)} the attribute {printable(key)}, which would shadow its "
                              f"{type(attribute).__name__}")

    def _op_persid(self, at: int) -> int:
        raise refused("uses a persistent id (ckpt never resolves them)")

    _op_binpersid = _op_persid

    def _op_ext1(self, at: int) -> int:
        raise refused("uses an extension code (copyreg's registry: ckpt never resolves them)")

    _op_ext2 = _op_ext4 = _op_ext1

    def _op_refused(self, at: int) -> int:
        raise refused(f"uses opcode {WIDTHS[self.raw[at - 1]][0]}")  # type: ignore[index]


class _Short(Exception):
    """An argument runs past the end of the stream."""


def _malformed(position: int | None, what: str) -> MalformedPickleError:
    at = f" at byte {position}" if position is not None else ""
    return MalformedPickleError(f"data.pkl is not a valid pickle{at}: {what} (damaged, or not a pickle)")


def _kind(obj: Any) -> str:
    if _is(obj, type):
        return f"the class {_qualified(obj)}"
    if type(obj) in (types.FunctionType, types.BuiltinFunctionType):
        return f"the function {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
    return f"a {_qualified(type(obj))}"


def _is(obj: Any, cls: type) -> bool:
    """isinstance(obj, cls) by the object's type alone: isinstance also asks
    the object for its `__class__`, which a class may make a property (its
    code would run on a check)."""
    kind = type(obj)
    return kind is cls or type.__subclasscheck__(cls, kind)


def _span(values: range) -> int:
    """len(values), which raises for a range longer than sys.maxsize."""
    return max(0, (values.stop - values.start + values.step - (1 if values.step > 0 else -1)) // values.step)


def _unwrapped(obj: Any) -> Any:
    return obj.cls if type(obj) is _ClassValue else obj


def _storable(admission: Admission) -> bool:
    """A class the loaded object may hold, to be called by whatever holds it
    after the load, outside the sandbox: one ckpt reviewed (a container, a
    date, a path, a decimal signal, numpy's scalar types, torch's layers), or
    one the user trusts by its exact name. A class trusted with its package is
    trusted to be rebuilt as its own pickling does, not to be called later
    with what the file gives it (torch's PackageExporter(path) as an
    executor's initializer writes that file on the first submit)."""
    return admission.source.startswith("reviewed") or admission.source == f"--trust {admission.name}"


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_attribute(cls: type, name: str) -> Any:
    for base in cls.__mro__:
        found = base.__dict__.get(name, _MISSING)
        if found is not _MISSING:
            return found
    return _MISSING


def _behaviour(attribute: Any) -> bool:
    """A class attribute a state key must not shadow: a method, property or
    other descriptor (a slot's own descriptor is where slot state goes; a
    cached_property keeps its value under its own name by design)."""
    if isinstance(attribute, functools.cached_property):
        return False
    if isinstance(attribute, (types.MemberDescriptorType, types.GetSetDescriptorType)):
        return False
    return callable(attribute) or hasattr(type(attribute), "__get__")
