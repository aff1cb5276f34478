"""Loading a pickle without crashing: how deep its tuples can nest.

`tuple_depth` bounds how deep tuples nest, opcode by opcode. `crash_proof`
runs code that hashes what a pickle built on a stack deep enough for
anything the bytes could nest. `fresh_extension_cache` keeps copyreg's
extension cache out of a load. What a pickle asks for is `stream`.
"""

from __future__ import annotations

import contextlib
import copyreg
import pickletools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .errors import CheckpointError
from .stream import compiled

T = TypeVar("T")

MAX_TUPLE_DEPTH = 10_000
"""Tuples nested deeper than this are refused before anything is built:
hashing one recurses in C without a limit and crashes the interpreter
(around 100,000 levels). pickle itself cannot write more than about
`sys.getrecursionlimit()` levels, so no file ckpt wrote comes near."""


@contextlib.contextmanager
def fresh_extension_cache() -> Iterator[None]:
    """The C unpickler resolves an EXT opcode through copyreg's extension
    cache before asking find_class: an object some earlier load cached
    would slip past the policy, and a ghost cached here would be handed to
    a later load. Empty the cache before and after."""
    copyreg.clear_extension_cache()
    try:
        yield
    finally:
        copyreg.clear_extension_cache()


def nesting_problem(data: Any) -> str | None:
    """Why the pickle's tuples nest too deep for CPython to hash, or None."""
    if nesting_bound(data) <= MAX_TUPLE_DEPTH:
        return None
    depth = tuple_depth(data)
    return f"tuples nested {depth:,} levels deep (more than {MAX_TUPLE_DEPTH:,})" if depth > MAX_TUPLE_DEPTH else None


_NESTING_OPCODES = b"\x85\x86\x87t\x91R\x81\x92oi"
"""TUPLE1-3, TUPLE, FROZENSET, REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST: the
opcodes that can make something one level deeper than what they take."""


def nesting_bound(data: Any) -> int:
    """An upper bound on how deep anything in the pickle nests: each level
    needs one of `_NESTING_OPCODES`, and counting those bytes anywhere in
    the stream (inside strings too) can only overestimate. C speed."""
    raw = bytes(data)
    return len(raw) - len(raw.translate(None, _NESTING_OPCODES))


_BYTES_PER_LEVEL = 128
"""Stack one level of tuple hashing takes, with room to spare (measured: under 64)."""


def crash_proof(work: Callable[[], T], data: Any) -> T:
    """Run `work` (which unpickles `data` and so hashes what it builds) where
    no nesting in `data` can overflow the C stack: a tuple's hash recurses
    without a limit, and a deep one would crash the interpreter. Shallow
    data runs here; deeper data runs in a thread whose stack fits the bound;
    if no such thread can be had, the precise depth decides."""
    bound = nesting_bound(data)
    if bound <= MAX_TUPLE_DEPTH:
        return work()
    try:
        return _with_stack(work, bound * _BYTES_PER_LEVEL + (16 << 20))
    except _NoThread:
        depth = tuple_depth(data)
        if depth > MAX_TUPLE_DEPTH:
            raise CheckpointError(
                f"data.pkl nests tuples {depth:,} levels deep, more than {MAX_TUPLE_DEPTH:,}; "
                "hashing them could crash Python"
            ) from None
        return work()


class _NoThread(Exception):
    pass


_stack_lock = threading.Lock()


def _with_stack(work: Callable[[], T], size: int) -> T:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # carried back to the caller's thread
            box["error"] = exc

    with _stack_lock:  # the stack size applies to threads started meanwhile
        previous = threading.stack_size()
        try:
            threading.stack_size(size)
            worker = threading.Thread(target=run, name="ckpt-unpickle", daemon=True)
            worker.start()
        except (ValueError, RuntimeError, MemoryError, OverflowError):
            raise _NoThread from None
        finally:
            threading.stack_size(previous)
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


# --- how deep tuples nest: one fast pass over the opcodes ------------------
#
# A tuple's hash hashes its items, recursively, with no recursion limit. The
# walk tracks, for every stack entry, how many tuples deep it reaches, with
# rules that can only overestimate: a tuple (TUPLE*, and OBJ / INST, whose
# result may be a tuple subclass holding the stack items) is one deeper than
# what it holds; a call (REDUCE, NEWOBJ) is as deep as its argument tuple;
# lists, dicts, sets and objects given state are as deep as what they hold.

_PUSH, _MARK, _TUPLE, _MARK_TUPLE, _COLLECT, _EXTEND, _MERGE1, _MERGE2, _CALL, _CALL_EX, _POP, _POP_MARK, \
    _DUP, _PUT, _MEMOIZE, _GET, _REPLACE, _KEEP, _STOP, _STACK_GLOBAL, _EMPTY_TUPLE = range(21)

_EFFECTS = {
    "MARK": _MARK, "TUPLE1": _TUPLE, "TUPLE2": _TUPLE, "TUPLE3": _TUPLE, "TUPLE": _MARK_TUPLE, "OBJ": _MARK_TUPLE,
    "INST": _MARK_TUPLE, "LIST": _COLLECT, "DICT": _COLLECT, "FROZENSET": _COLLECT, "APPENDS": _EXTEND,
    "SETITEMS": _EXTEND, "ADDITEMS": _EXTEND, "APPEND": _MERGE1, "BUILD": _MERGE1, "SETITEM": _MERGE2,
    "REDUCE": _CALL, "NEWOBJ": _CALL, "NEWOBJ_EX": _CALL_EX, "POP": _POP, "POP_MARK": _POP_MARK, "DUP": _DUP,
    "PUT": _PUT, "BINPUT": _PUT, "LONG_BINPUT": _PUT, "MEMOIZE": _MEMOIZE, "GET": _GET, "BINGET": _GET,
    "LONG_BINGET": _GET, "BINPERSID": _REPLACE, "STACK_GLOBAL": _STACK_GLOBAL, "READONLY_BUFFER": _KEEP,
    "PROTO": _KEEP, "FRAME": _KEEP, "STOP": _STOP, "EMPTY_TUPLE": _EMPTY_TUPLE,
}
_TUPLE_SIZES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_OPCODE_TABLE = {
    op.code.encode("latin-1")[0]: (
        op.arg.n if op.arg is not None else 0,
        2 if op.name in ("GLOBAL", "INST") else 1,  # lines of a newline-terminated argument
        _EFFECTS.get(op.name, _PUSH),
        _TUPLE_SIZES.get(op.name, 0),
    )
    for op in pickletools.opcodes
}
_TABLE: list[Any] = [_OPCODE_TABLE.get(code) for code in range(256)]
"""_OPCODE_TABLE as a list indexed by the opcode byte (None: not an opcode)."""
_LENGTH_BYTES = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                 pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}


def _encoding(n: int, lines: int) -> int:
    """An argument's encoding for the C walk: 0-8 fixed bytes, 100 + the
    bytes of a length prefix, 200 + lines of text."""
    if n >= 0:
        return n
    return 200 + lines if n == pickletools.UP_TO_NEWLINE else 100 + _LENGTH_BYTES[n]


_PACKED_TABLE = bytes(
    byte for entry in _TABLE
    for byte in ((_encoding(entry[0], entry[1]), entry[2], entry[3]) if entry is not None else (255, 0, 0))
)
"""_TABLE for core/_stream.c's `depth`: three bytes per opcode (encoding, effect, tuple size)."""


def tuple_depth(data: Any) -> int:
    """How deep tuples nest in the pickle, at most. Nothing is built: a
    malformed stream just ends the walk (the unpickler refuses it later).

    core/_stream.c's `depth` walks the same way at C speed (inspect and
    verify run it on every file); this loop is its twin where it is not
    built, written for speed too: the frequent opcodes inline, and the memo
    keeps only the entries that hold a tuple."""
    raw = bytes(data)
    module = compiled()
    if module is not None:
        return int(module.depth(raw, _PACKED_TABLE))
    table = _TABLE
    stack: list[int] = []
    push = stack.append
    marks: list[int] = []
    memo: dict[int, int] = {}
    memoized = deepest = i = 0
    end = len(raw)
    try:
        while i < end:
            n, lines, effect, size = table[raw[i]]
            start = i = i + 1
            if n >= 0:
                i += n
            elif n == pickletools.UP_TO_NEWLINE:
                for _ in range(lines):
                    i = raw.index(b"\n", i) + 1
            else:
                width = _LENGTH_BYTES[n]
                i += width + int.from_bytes(raw[i : i + width], "little")
            if i > end:  # an argument cut short
                break
            if effect == _PUSH:
                push(0)
            elif effect == _GET:
                push(memo.get(raw[start] if n == 1 else _memo_key(raw, start, i, n), 0))
            elif effect == _MEMOIZE:
                if stack[-1]:
                    memo[memoized] = stack[-1]
                memoized += 1
            elif effect == _MARK:
                marks.append(len(stack))
            elif effect == _MERGE1 or effect == _CALL:  # BUILD, APPEND, REDUCE, NEWOBJ: keep the deeper
                held = stack.pop()
                if held > stack[-1]:
                    stack[-1] = held
            elif effect == _EXTEND:  # APPENDS, SETITEMS, ADDITEMS
                cut = marks.pop()
                if cut < len(stack):
                    held = max(stack[cut:])
                    del stack[cut:]
                    if held > stack[-1]:
                        stack[-1] = held
            elif effect == _PUT:
                key = raw[start] if n == 1 else _memo_key(raw, start, i, n)
                memo[key] = stack[-1]
            elif effect == _TUPLE or effect == _MARK_TUPLE:
                cut = marks.pop() if effect == _MARK_TUPLE else len(stack) - size
                if cut < 0:  # fewer items than TUPLE1-3 take
                    break
                depth = 1 + max(stack[cut:], default=0)
                del stack[cut:]
                push(depth)
                deepest = max(deepest, depth)
            else:
                _apply(effect, stack, marks)
                if effect == _STOP:
                    break
    except (IndexError, KeyError, ValueError, TypeError):  # TypeError: an opcode byte with no entry
        pass
    return deepest


def _memo_key(raw: bytes, start: int, stop: int, n: int) -> int:
    if n == pickletools.UP_TO_NEWLINE:  # GET, PUT: digits only (the unpickler refuses more than a C long holds)
        text = raw[start : stop - 1]
        if not text.isdigit() or len(text) > 18:
            raise ValueError("not a memo index")
        return int(text)
    return int.from_bytes(raw[start:stop], "little")


def _apply(effect: int, stack: list[int], marks: list[int]) -> None:
    """The opcodes that neither push a constant, nor touch the memo, nor build a tuple."""
    if effect == _MARK:
        marks.append(len(stack))
    elif effect == _COLLECT or effect == _EXTEND or effect == _POP_MARK:
        cut = marks.pop()
        held = max(stack[cut:], default=0)
        del stack[cut:]
        if effect == _COLLECT:
            stack.append(held)
        elif effect == _EXTEND:
            stack[-1] = max(stack[-1], held)
    elif effect == _MERGE1 or effect == _MERGE2 or effect == _CALL:
        count = 2 if effect == _MERGE2 else 1
        if len(stack) <= count:
            raise IndexError("stack underflow")
        held = max(stack[-count:])
        del stack[-count:]
        stack[-1] = max(stack[-1], held)
    elif effect == _CALL_EX:
        if len(stack) < 3:
            raise IndexError("stack underflow")
        held = max(stack[-2], stack[-1] + 1)  # keyword arguments become the object's items
        del stack[-2:]
        stack[-1] = max(stack[-1], held)
    elif effect == _POP or effect == _STOP:
        stack.pop()
    elif effect == _DUP:
        stack.append(stack[-1])
    elif effect == _STACK_GLOBAL:
        del stack[-2:]
        stack.append(0)
    elif effect == _REPLACE:
        stack[-1] = 0
    elif effect == _EMPTY_TUPLE:
        stack.append(1)
