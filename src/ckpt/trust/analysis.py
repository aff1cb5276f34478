"""What a pickle asks for, read from its opcodes: nothing is imported, called or built.

`analyse(data)` follows the unpickler's stack symbolically and returns, for
every global the stream names, how the stream *uses* it:

- `VALUE`: stored as data (an attribute, an argument, a dict value);
- `CALL`: called with the file's arguments (REDUCE, INST/OBJ with
  arguments, or through a `functools.partial` the file builds);
- `NEW`: instantiated without running its constructor (NEWOBJ with no
  arguments: `cls.__new__(cls)`, as pickle writes ordinary instances);
- `NEW_ARGS`: `cls.__new__(cls, *args)` with arguments (NEWOBJ, NEWOBJ_EX);
- `RESULT_USED`: what calling it returned receives state or items, or has
  a bound method taken from it: only safe if the call made a new object;
- `INSTANCE_CALLED`: an instance the file made of it is called (its own
  `__call__` as a reconstructor, as SQLAlchemy's `_UnpickleDispatch()`).

It also lists the stream's *problems*: things no pickle of ordinary objects
does, refused whatever is trusted. State or items applied to a global itself
(that would change a class or function of the running process), a call of
something that is not a named global, a global whose name is computed at
load time, extension codes and persistent ids, `type()` of anything but
None / NotImplemented / Ellipsis (pickle's own spelling of their types),
bound methods (`getattr`) other than a public method of an instance the
file created, a memo index larger than the stream could have filled, and
a malformed stream.

This is the "parse" and the structural half of the "audit" in
parse -> audit -> construct: the policy (`policy.judge`) decides what each
use of each global needs; the loader, `inspect`, `verify`, refusal hints
and save's "this file needs --trust X" all read this one analysis.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from ckpt.errors import printable
from ckpt.objects.collector import collector_paused
from ckpt.objects.compiled import compiled
from ckpt.objects.opcodes import WIDTHS
from ckpt.trust.flood import MAX_COLLISIONS, Floods

VALUE, CALL, NEW, NEW_ARGS, RESULT_USED, INSTANCE_CALLED = 1, 2, 4, 8, 16, 32
USE_NAMES = {VALUE: "stored as a value", CALL: "called", NEW: "instantiated", NEW_ARGS: "instantiated with arguments",
             RESULT_USED: "given state or items after a call", INSTANCE_CALLED: "has an instance called"}

MAX_PROBLEMS = 20
"""Problems listed per stream: a hostile file could otherwise make the list itself large."""

GETATTR, TYPE, PARTIAL = "builtins:getattr", "builtins:type", "functools:partial"
TYPE_ARGUMENTS = ("builtins:NotImplemented", "builtins:Ellipsis")
"""pickle writes NoneType, NotImplementedType and ellipsis as type(None), type(NotImplemented), type(...)."""


@dataclass(frozen=True)
class StreamFacts:
    globals: dict[str, int]
    """"module:qualname" -> the uses (bit flags above), in order of first appearance."""
    problems: tuple[str, ...]
    opcodes: int = 0
    memo: int = 0
    malformed: str | None = None
    """Where and how the stream breaks the pickle format (it is also the first problem)."""

    def uses(self, name: str) -> list[str]:
        bits = self.globals.get(name, 0)
        return [text for bit, text in USE_NAMES.items() if bits & bit]


# --- stack tags ---------------------------------------------------------------
# Most stack entries are plain data and carry the tag None. The others:


class _Tag:
    __slots__ = ()


class _New(_Tag):
    """An instance made by NEWOBJ / INST / OBJ: new, so it may receive state."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


@dataclass(frozen=True, slots=True)
class _Result(_Tag):
    """What calling a global returned."""

    name: str


class _Global(_Tag):
    __slots__ = ("name", "instance", "result")

    def __init__(self, name: str) -> None:
        self.name = name
        self.instance = _New(name)
        """The tag of every instance NEWOBJ makes of it (tags are never changed: one serves all)."""
        self.result = _Result(name)
        """The tag of everything calling it returns."""


@dataclass(frozen=True, slots=True)
class _Partial(_Tag):
    """functools.partial(name, ...): calling it calls `name` (None: a bound method)."""

    name: str | None


@dataclass(frozen=True, slots=True)
class _Tuple(_Tag):
    items: tuple[object, ...]


class _Marker(_Tag):
    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return self.what


_NONE = _Marker("None")
_HOLE = _Marker("no memo entry")
_EMPTY = _Tuple(())
_TYPE_OF = _Marker("the type of None, NotImplemented or Ellipsis")
_METHOD = _Marker("a bound method")


class _Malformed(Exception):
    pass


@dataclass
class _State:
    stack: list[object] = field(default_factory=list)
    marks: list[int] = field(default_factory=list)
    memo: list[object] = field(default_factory=list)
    """Entries by memo index, _HOLE where none was stored (indexes are bounded by the opcodes read)."""
    filled: int = 0
    """Entries stored: MEMOIZE's next index, as the unpickler counts them."""
    uses: dict[str, int] = field(default_factory=dict)
    tags: dict[str, _Global] = field(default_factory=dict)
    floods: Floods = field(default_factory=Floods)
    problems: list[str] = field(default_factory=list)
    position: int = 0
    opcodes: int = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS and text not in self.problems:
            self.problems.append(text)

    def use(self, name: str, bit: int) -> None:
        self.uses[name] = self.uses.get(name, 0) | bit

    def value(self, tag: object) -> None:
        """`tag` is kept as data: a global stored somewhere is a VALUE use."""
        if isinstance(tag, _Global):
            self.use(tag.name, VALUE)
        elif isinstance(tag, _Tuple):
            for item in tag.items:
                self.value(item)
        elif isinstance(tag, _Partial) and tag.name is not None:
            self.use(tag.name, CALL)

    def remember(self, index: int, entry: object) -> None:
        memo = self.memo
        if index >= len(memo):
            memo.extend([_HOLE] * (index + 1 - len(memo)))
        if memo[index] is _HOLE:
            self.filled += 1
        memo[index] = entry

    def recall(self, index: int) -> object:
        entry = self.memo[index] if index < len(self.memo) else _HOLE
        if entry is _HOLE:
            raise KeyError(index)
        return entry

    def pop(self) -> object:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) <= floor:
            raise _Malformed("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[object]:
        if not self.marks:
            raise _Malformed("no MARK before an opcode that needs one")
        cut = self.marks.pop()
        items = self.stack[cut:]
        del self.stack[cut:]
        return items

    def top(self) -> object:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) <= floor:
            raise _Malformed("stack underflow")
        return self.stack[-1]


def analyse(data: bytes | bytearray | memoryview) -> StreamFacts:
    """Every global the pickle names, how it uses each, and its problems."""
    state = _State()
    raw = data if isinstance(data, (bytes, bytearray)) else bytes(data)  # save's data.pkl: not copied again
    try:
        with collector_paused():  # the analysis makes no cycles, and a million tags would run it a thousand times
            _run(raw, state)
    except _Malformed as exc:
        malformed = f"is not a valid pickle at byte {state.position}: {exc}"
        return StreamFacts(dict(state.uses), (malformed, *state.problems), state.opcodes, state.filled, malformed)
    return StreamFacts(dict(state.uses), tuple(state.problems), state.opcodes, state.filled)


_HOT_DATA = frozenset(b"}]N")  # EMPTY_DICT EMPTY_LIST NONE
_TEXT_OPS = frozenset(b"\x8cX\x8d")  # SHORT_BINUNICODE BINUNICODE BINUNICODE8


def _fast_path() -> Any:
    """The compiled opcode loop: it applies opcodes exactly as the loop
    below does, and leaves the few it does not read to it."""
    module = compiled("ckpt.trust._analysis")
    return module.run if module is not None else None


def _hooks(state: _State) -> tuple[Any, ...]:
    """What the fast path calls back for the rarer cases of the opcodes it
    reads: the very functions the loop below uses, so both judge alike."""
    return (
        state.value,
        lambda target, what: _receives(target, what, state),
        lambda given: _partial_state(given, state),
        lambda func, args: _call(func, args, state),
        lambda cls, args, kwargs, extended: _new(cls, args, kwargs, extended, state),
        lambda lines: _named(lines, state),
        lambda first, last: _stack_global(first, last, state),
        lambda code: _extension(code, state),
        lambda: _persistent(state),
        lambda items: _count_tuple(items, state),
        lambda items: _count_frozenset(items, state),
    )


def _run(raw: bytes | bytearray, state: _State) -> None:
    """The opcode loop, written for speed (it reads every opcode of
    object-heavy pickles, millions of them): the frequent opcodes inline,
    the others in `_apply`; with the compiled fast path, the frequent ones in C."""
    stack, marks, uses = state.stack, state.marks, state.uses
    push, value = stack.append, state.value
    widths = WIDTHS
    i, end, count = 0, len(raw), 0
    fast = _fast_path()
    tags = (_NONE, _EMPTY, _New, _Global, _Result, _Tuple, _Partial, (GETATTR, TYPE, PARTIAL, *_VALUE_TYPES),
            _hooks(state), _HOLE)
    here = 0
    try:
        while i < end:
            if fast is not None:
                i, count, state.filled = fast(raw, i, count, stack, marks, state.memo, state.filled, uses, tags)
                if i >= end:
                    break
            here = state.position = i
            code = raw[i]
            entry = widths[code]
            if entry is None:
                raise _Malformed(f"unknown opcode {code:#04x}")
            width = entry[1]
            start = i + 1
            if width >= 0:
                i = start + width
            elif width == -1:
                start += 1
                i = start + raw[start - 1]
            elif width < -3:
                size = -width
                start += size
                i = start + int.from_bytes(raw[start - size : start], "little")
            else:
                i = raw.index(b"\n", start) + 1
                if width == -3:
                    i = raw.index(b"\n", i) + 1
            if i > end:
                raise _Malformed(f"{entry[0]} runs past the end of the stream")
            count += 1
            if code == 0x68:  # BINGET
                push(state.recall(raw[start]))
            elif code == 0x94:  # MEMOIZE
                state.remember(state.filled, stack[-1])
            elif code in _HOT_DATA:
                push(_NONE if code == 0x4E else None)
            elif code == 0x28:  # MARK
                marks.append(len(stack))
            elif code in _TEXT_OPS:
                push(raw[start:i].decode("utf-8", "surrogatepass"))
            elif code == 0x75 or code == 0x65:  # SETITEMS, APPENDS
                cut = marks.pop()
                for item in stack[cut:]:
                    if item is not None and item.__class__ is not str:
                        value(item)
                del stack[cut:]
                target = stack[-1]
                if target is not None and target.__class__ is not _New:
                    _receives(target, "items", state)
            elif code == 0x62:  # BUILD
                given = stack.pop()
                target = stack[-1]
                if target.__class__ is _Partial:
                    _partial_state(given, state)
                else:
                    if given is not None and given.__class__ is not str:
                        value(given)
                    if target is not None and target.__class__ is not _New:
                        _receives(target, "state", state)
            elif code == 0x29:  # EMPTY_TUPLE
                push(_EMPTY)
            elif code == 0x81:  # NEWOBJ
                args = stack.pop()
                cls = stack.pop()
                if args is _EMPTY and cls.__class__ is _Global:
                    uses[cls.name] |= NEW
                    push(cls.instance)
                else:
                    push(_new(cls, args, _EMPTY, False, state))
            elif code == 0x2E:  # STOP
                state.opcodes = count
                state.value(stack.pop())
                return
            else:
                state.opcodes = count
                _apply(entry[0], bytes(raw[start:i]), state)
    except (IndexError, KeyError) as exc:
        state.position = here
        what = "a memo index that was never stored" if isinstance(exc, KeyError) else "stack underflow"
        raise _Malformed(what) from None
    except UnicodeDecodeError:
        state.position = here
        raise _Malformed("a string that is not valid UTF-8") from None
    except ValueError:  # no newline where one must be
        state.position = here
        raise _Malformed("a truncated argument") from None
    finally:
        state.opcodes = count
    state.position = end
    raise _Malformed("the stream ends without STOP")


def _text(name: str, arg: bytes) -> object:
    try:
        return arg[:-1].decode("raw-unicode-escape") if name == "UNICODE" else arg.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise _Malformed("a string that is not valid UTF-8") from None


def _integer(name: str, arg: bytes) -> int:
    if name in ("LONG1", "LONG4"):
        return int.from_bytes(arg, "little", signed=True)
    text = arg.rstrip(b"L\n")
    try:
        return int(text) if text not in (b"00", b"01") else int(text[1:])
    except ValueError:  # over Python's digit limit, or not a number: the unpickler refuses it too
        raise _Malformed(f"{name} is not an integer Python reads") from None


def _count_integer(value: int, state: _State) -> None:
    """Integers smaller than the hash modulus never collide; larger ones can, at will."""
    if not -_MODULUS < value < _MODULUS:
        _count(value, "integers", state)


def _count(value: object, what: str, state: _State) -> None:
    if state.floods.add(value):
        state.problem(f"holds more than {MAX_COLLISIONS:,} distinct {what} with one hash value (a hash-flooding "
                      "dict or set)")


_SCALARS = (int, float, bool, str)


def _numbers_in(items: tuple[object, ...] | list[object]) -> tuple[object, ...] | None:
    """`items` as the values they load as, if they are numbers and strings
    with at least one number (a tuple of strings hashes at random), else None."""
    numbers = False
    for item in items:
        if item.__class__ in _SCALARS:
            numbers = numbers or item.__class__ is not str
        elif item is not _NONE:
            return None
    return tuple(None if item is _NONE else item for item in items) if numbers else None


def _literal(name: str, arg: bytes) -> object:
    """The value of BININT, BININT1, BININT2, BINFLOAT, NEWTRUE, NEWFALSE and FLOAT
    (numbers carry their value: tuples of them are counted for hash flooding)."""
    if name == "BINFLOAT":
        return struct.unpack(">d", arg)[0]
    if name in ("NEWTRUE", "NEWFALSE"):
        return name == "NEWTRUE"
    if name == "FLOAT":
        try:
            return float(arg[:-1])
        except ValueError:  # the unpickler refuses it
            return None
    return int.from_bytes(arg, "little", signed=name == "BININT")


def _memo_index(name: str, arg: bytes) -> int:
    if name in ("PUT", "GET"):
        try:
            index = int(arg[:-1])
        except ValueError:
            raise _Malformed(f"{name} with a bad index") from None
        if index < 0:
            raise _Malformed(f"{name} with a bad index")
        return index
    return int.from_bytes(arg, "little")


_DATA = frozenset({
    "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
    "EMPTY_SET", "NEXT_BUFFER", "UNICODE",
})
_INTEGERS = frozenset({"INT", "LONG", "LONG1", "LONG4"})
_LITERALS = frozenset({"BININT", "BININT1", "BININT2", "BINFLOAT", "NEWTRUE", "NEWFALSE", "FLOAT"})
_MODULUS = 2**61 - 1
"""CPython hashes an int by its value modulo this prime."""


def _apply(name: str, arg: bytes, state: _State) -> None:
    stack = state.stack
    if name == "MARK":
        state.marks.append(len(stack))
    elif name == "NONE":
        stack.append(_NONE)
    elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
        index = state.filled if name == "MEMOIZE" else _memo_index(name, arg)
        if index > state.opcodes:
            raise _Malformed(f"memo index {index:,} is larger than the stream could fill")
        state.remember(index, state.top())
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        index = _memo_index(name, arg)
        try:
            stack.append(state.recall(index))
        except KeyError:
            raise _Malformed(f"memo index {index} was never stored") from None
    elif name in ("PROTO", "FRAME"):
        pass
    elif name in _DATA:
        stack.append(_text(name, arg) if name == "UNICODE" else None)
    elif name in _INTEGERS:
        value = _integer(name, arg)
        stack.append(value)
        _count_integer(value, state)
    elif name in _LITERALS:
        stack.append(_literal(name, arg))
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        count = int(name[-1])
        stack.append(_tuple([state.pop() for _ in range(count)][::-1], state))
    elif name == "TUPLE":
        stack.append(_tuple(state.pop_mark(), state))
    elif name in ("LIST", "DICT", "FROZENSET"):
        items = state.pop_mark()
        for item in items:
            state.value(item)
        stack.append(None)
        if name == "FROZENSET":
            _count_frozenset(items, state)
    elif name in ("APPEND", "SETITEM", "SETITEMS", "APPENDS", "ADDITEMS", "BUILD"):
        _fill(name, state)
    elif name in ("POP", "POP_MARK", "DUP", "READONLY_BUFFER"):
        _stack_op(name, state)
    elif name in ("GLOBAL", "INST"):
        glob = _named(arg.decode("utf-8", "surrogatepass"), state)
        if name == "GLOBAL":
            stack.append(glob)
        else:
            _instantiate(glob, state.pop_mark(), state)
    elif name == "STACK_GLOBAL":
        last, first = state.pop(), state.pop()
        stack.append(_stack_global(first, last, state))
    elif name == "OBJ":
        items = state.pop_mark()
        if not items:
            raise _Malformed("OBJ without a class")
        _instantiate(items[0], items[1:], state)
    elif name == "REDUCE":
        args = state.pop()
        stack.append(_call(state.pop(), args, state))
    elif name in ("NEWOBJ", "NEWOBJ_EX"):
        kwargs = state.pop() if name == "NEWOBJ_EX" else _EMPTY
        args = state.pop()
        stack.append(_new(state.pop(), args, kwargs, name == "NEWOBJ_EX", state))
    elif name in ("EXT1", "EXT2", "EXT4"):
        _extension(int.from_bytes(arg, "little"), state)
        stack.append(None)
    elif name in ("PERSID", "BINPERSID"):
        if name == "BINPERSID":
            state.pop()
        _persistent(state)
        stack.append(None)
    else:
        raise _Malformed(f"unexpected opcode {name}")


def _tuple(items: list[object], state: _State) -> _Tuple:
    """Only a tuple's own items can matter (as the arguments of a call, or a
    partial's state): a tuple inside one is data at once, so tags never nest."""
    for index, item in enumerate(items):
        if isinstance(item, _Tuple):
            state.value(item)
            items[index] = None
    if items:
        _count_tuple(items, state)
    return _Tuple(tuple(items))


def _count_tuple(items: list[object] | tuple[object, ...], state: _State) -> None:
    """A tuple of numbers: the tuple hash can be inverted, so a file can make
    any number of them collide. (A tuple holding tuples or objects is not
    counted: see docs/DESIGN-NOTES.md.)"""
    values = _numbers_in(items)
    if values is not None:
        _count(values, "tuples of numbers", state)


def _count_frozenset(items: list[object], state: _State) -> None:
    values = _numbers_in(items)
    if values is not None:
        _count(frozenset(values), "frozensets of numbers", state)


_VALUE_TYPES = {"builtins:complex": complex, "builtins:range": range}
"""Builtin types whose hash a file can make collide from numbers alone
(complex(a, b) hashes as a + 1000003 * b): each one the file builds from
numbers is counted. Building them here runs nothing but the builtin."""


def _count_value(name: str, items: tuple[object, ...] | None, state: _State) -> None:
    values = _numbers_in(items) if items else None
    if values is None or any(value.__class__ is str for value in values):
        return
    try:
        value = _VALUE_TYPES[name](*values)
    except (TypeError, ValueError, OverflowError):  # the load fails the same way
        return
    _count(value, f"{name.partition(':')[2]} values", state)


def _stack_global(first: object, last: object, state: _State) -> _Global | None:
    if not isinstance(first, str) or not isinstance(last, str):
        state.problem("a global whose name is computed at load time")
        return None
    return _global(first, last, state)


def _extension(code: int, state: _State) -> None:
    state.problem(f"extension code {code} (copyreg's registry; ckpt never resolves them)")


def _persistent(state: _State) -> None:
    state.problem("a persistent id (ckpt never resolves them)")


def _named(lines: str, state: _State) -> _Global:
    """GLOBAL and INST: the module and the name on two lines."""
    module, _, qualname = lines.rstrip("\n").partition("\n")
    return _global(module, qualname, state)


def _global(module: str, qualname: str, state: _State) -> _Global:
    name = f"{module}:{qualname}"
    state.uses.setdefault(name, 0)
    if name not in state.tags:
        state.tags[name] = _Global(name)
    return state.tags[name]


def _stack_op(name: str, state: _State) -> None:
    if name == "POP":
        if state.marks and len(state.stack) == state.marks[-1]:
            state.marks.pop()  # POP of an empty mark discards the mark, as the C unpickler does
        else:
            state.value(state.pop())
    elif name == "POP_MARK":
        for item in state.pop_mark():
            state.value(item)
    elif name == "DUP":
        state.stack.append(state.top())
    else:  # READONLY_BUFFER
        state.top()


def _fill(name: str, state: _State) -> None:
    """APPEND(S), SETITEM(S), ADDITEMS, BUILD: items or state go into the object below them."""
    if name in ("SETITEMS", "APPENDS", "ADDITEMS"):
        added = state.pop_mark()
    else:
        added = [state.pop() for _ in range(2 if name == "SETITEM" else 1)]
    target = state.top()
    if name == "BUILD" and isinstance(target, _Partial):
        _partial_state(added[0], state)
        return
    for item in added:
        state.value(item)
    what = "state" if name == "BUILD" else "items"
    _receives(target, what, state)


def _receives(target: object, what: str, state: _State) -> None:
    if isinstance(target, _Global):
        state.problem(f"gives {what} to {printable(target.name)} itself, which belongs to the running process")
    elif isinstance(target, _Result):
        state.use(target.name, RESULT_USED)
    elif target is _METHOD or target is _TYPE_OF:
        state.problem(f"gives {what} to {target!r}")


def _partial_state(tag: object, state: _State) -> None:
    """functools.partial's state is (function, args, keywords, dict): its function must be a named global."""
    items = tag.items if isinstance(tag, _Tuple) else ()
    if not items:
        state.value(tag)
        state.problem("gives a functools.partial state that is not a tuple")
        return
    func, rest = items[0], items[1:]
    if isinstance(func, _Global):
        state.use(func.name, CALL)
    elif func is not _METHOD:
        state.problem("gives a functools.partial a function that is not a named global")
    for item in rest:
        state.value(item)


def _call(func: object, args: object, state: _State) -> object:
    """REDUCE: func(*args)."""
    items = args.items if isinstance(args, _Tuple) else None
    if isinstance(func, _Global):
        if func.name == GETATTR:
            return _bound_method(items, state)
        if func.name == TYPE:
            return _type_of(items, state)
        if func.name in _VALUE_TYPES:
            _count_value(func.name, items, state)
        state.use(func.name, CALL)
        if func.name == PARTIAL and items:
            return _new_partial(items, state)
        state.value(args)
        return func.result
    state.value(args)
    if isinstance(func, _Partial) and func.name is not None:
        return _Result(func.name)
    if isinstance(func, _New):
        state.use(func.name, INSTANCE_CALLED)
        return _Result(func.name)
    if func is _TYPE_OF and items == ():
        return None
    state.problem(f"calls {func!r}" if isinstance(func, _Marker) else "calls something that is not a named global")
    return None


def _new_partial(items: tuple[object, ...], state: _State) -> object:
    func = items[0]
    for item in items[1:]:
        state.value(item)
    if isinstance(func, _Global):
        state.use(func.name, CALL)
        return _Partial(func.name)
    if func is _METHOD:
        return _Partial(None)
    state.problem("builds a functools.partial of something that is not a named global")
    return None


def _bound_method(items: tuple[object, ...] | None, state: _State) -> object:
    """getattr(obj, name) is how pickle writes a bound method: a public
    method of an instance this load created (stored, never called by the
    file), or a method bound to a named class (a classmethod), which is
    then judged as the global `module:Class.name` it is."""
    if items is None or len(items) != 2:
        state.problem("calls getattr with arguments pickle never writes")
        return None
    owner, name = items
    if not isinstance(name, str) or not name.isidentifier() or (name.startswith("__") and name.endswith("__")):
        state.problem(f"takes attribute {printable(repr(name)) if isinstance(name, str) else '(computed)'} with getattr")
        return None
    if isinstance(owner, _Global):
        state.use(owner.name, VALUE)
        module, qualname = owner.name.split(":", 1)
        return _global(module, f"{qualname}.{name}", state)
    if name.startswith("_"):
        state.problem(f"takes private attribute {name!r} with getattr (only public methods of objects the file "
                      "creates)")
        return None
    if isinstance(owner, _Result):
        state.use(owner.name, RESULT_USED)
    elif not isinstance(owner, _New):
        state.problem(f"takes {name!r} with getattr from something the file did not create")
        return None
    return _METHOD


def _type_of(items: tuple[object, ...] | None, state: _State) -> object:
    if items is not None and len(items) == 1:
        (item,) = items
        if item is _NONE:
            return _TYPE_OF
        if isinstance(item, _Global) and item.name in TYPE_ARGUMENTS:
            state.use(item.name, VALUE)
            return _TYPE_OF
    state.problem("calls type() on something other than None, NotImplemented or Ellipsis")
    return None


def _new(cls: object, args: object, kwargs: object, extended: bool, state: _State) -> object:
    """NEWOBJ / NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)."""
    state.value(args)
    state.value(kwargs)
    if isinstance(cls, _Global):
        if cls.name in _VALUE_TYPES and isinstance(args, _Tuple):
            _count_value(cls.name, args.items, state)
        with_arguments = extended or not (isinstance(args, _Tuple) and not args.items)
        state.use(cls.name, NEW_ARGS if with_arguments else NEW)
        return cls.instance
    if cls is _TYPE_OF:
        return None
    state.problem("instantiates something that is not a named class")
    return None


def _instantiate(cls: object, args: list[object], state: _State) -> None:
    """INST / OBJ (protocols 0 and 1): cls(*args), or cls.__new__(cls) without arguments."""
    for item in args:
        state.value(item)
    if not isinstance(cls, _Global):
        state.problem("instantiates something that is not a named class")
        state.stack.append(None)
        return
    state.use(cls.name, CALL if args else NEW)
    state.stack.append(_Result(cls.name) if args else cls.instance)
