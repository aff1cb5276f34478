"""A corpus of hostile checkpoints, written opcode by opcode.

Each `Attack` is one row: a payload for `data.pkl` (placed in an otherwise
valid checkpoint whose manifest is recomputed to match, as an attacker
would) or a rewrite of the whole archive, and a fragment of the one-line
refusal it must get. A payload that got through would touch
`WORK/sentinel` or damage `WORK/victim/keep.txt`; the tests check both.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conftest import rewrite_member

# --- spelling opcodes -------------------------------------------------------------

MARK, TUPLE, TUPLE1, TUPLE2, EMPTY_TUPLE, REDUCE, BUILD = b"(", b"t", b"\x85", b"\x86", b")", b"R", b"b"
NONE, TRUE, NEWFALSE, EMPTY_DICT, SETITEM, SETITEMS, EMPTY_LIST, APPENDS = b"N", b"\x88", b"\x89", b"}", b"s", b"u", b"]", b"e"
STACK_GLOBAL = b"\x93"


def pkl(*ops: bytes) -> bytes:
    return b"\x80\x05" + b"".join(ops) + b"."


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def blob(value: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(value)) + value


def number(value: int) -> bytes:
    return pickle.dumps(value, 2)[2:-1]


def items(*values: bytes) -> bytes:
    """A list of the values."""
    return EMPTY_LIST + MARK + b"".join(values) + APPENDS


def call(func: bytes, *args: bytes) -> bytes:
    return func + MARK + b"".join(args) + TUPLE + REDUCE


def keywords(func: bytes, args: tuple[bytes, ...], kwargs: dict[str, bytes]) -> bytes:
    """func(*args, **kwargs), spelled as pickle spells keywords: a
    functools.partial given its state with BUILD, then called."""
    pairs = b"".join(text(k) + v for k, v in kwargs.items())
    state = MARK + func + MARK + b"".join(args) + TUPLE + EMPTY_DICT + MARK + pairs + SETITEMS + NONE + TUPLE
    return call(glob("functools", "partial"), func) + state + BUILD + EMPTY_TUPLE + REDUCE


def nested_tuples(depth: int) -> bytes:
    return NONE + TUPLE1 * depth


class RunsShell:
    """What an attacker pickles with plain pickle: os.system on load."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (self.command,)


# --- the rows -------------------------------------------------------------------


def touch(work: Path) -> str:
    return f"touch {work / 'sentinel'}"


def python_touch(work: Path) -> str:
    return f"open({str(work / 'sentinel')!r}, 'w').close()"


def shell(module: str, name: str) -> Callable[[Path], bytes]:
    return lambda work: pkl(call(glob(module, name), text(touch(work))))


def python_code(name: str) -> Callable[[Path], bytes]:
    return lambda work: pkl(call(glob("builtins", name), text(python_touch(work))))


def plain_pickle(work: Path) -> bytes:
    return pickle.dumps(RunsShell(touch(work)), protocol=5)


def numpy_load(work: Path) -> bytes:
    """numpy.load(allow_pickle=True) of a real .npy holding an object array whose item runs os.system."""
    import numpy as np

    npy = work / "embedded.npy"
    array = np.empty(1, dtype=object)
    array[0] = RunsShell(touch(work))
    np.save(npy, array, allow_pickle=True)
    return pkl(keywords(glob("numpy", "load"), (text(str(npy)),), {"allow_pickle": TRUE}))


def torch_call_gadget(work: Path) -> bytes:
    """_rebuild_from_type_v2(func, type, args, state) calls func(*args). The
    function is named first (memoized, then fetched), as a careful attacker
    would: the refusal must not depend on which global comes first."""
    runner = glob("posix", "system") + b"q\x00" + b"0"
    return pkl(runner + call(glob("torch._tensor", "_rebuild_from_type_v2"), b"h\x00", glob("torch", "Tensor"),
                             MARK + text(touch(work)) + TUPLE, EMPTY_DICT))


def handler_class_changed(work: Path) -> bytes:
    state = NONE + EMPTY_DICT + text("handle") + glob("logging", "getLogger") + SETITEM + TUPLE2
    return pkl(glob("logging", "Handler") + state + BUILD)


def function_changed(work: Path) -> bytes:
    state = NONE + EMPTY_DICT + text("__defaults__") + MARK + text("x") + TUPLE + SETITEM + TUPLE2
    return pkl(glob("threading", "RLock") + state + BUILD)


def root_logger_changed(work: Path) -> bytes:
    return pkl(call(glob("logging", "getLogger")) + EMPTY_DICT + text("disabled") + TRUE + SETITEM + BUILD)


def logger_class_changed(work: Path) -> bytes:
    """type(x) hands out the class of an object the load built: still the process's own."""
    state = NONE + EMPTY_DICT + text("ckpt_evil") + TRUE + SETITEM + TUPLE2
    return pkl(call(glob("builtins", "type"), call(glob("logging", "getLogger"))) + state + BUILD)


def computed_global(work: Path) -> bytes:
    module = call(glob("builtins", "next"), call(glob("builtins", "iter"), items(text("os"))))
    return pkl(module + text("system") + STACK_GLOBAL + MARK + text(touch(work)) + TUPLE + REDUCE)


def memo_names(work: Path) -> bytes:
    names = text("posix") + b"q\x01" + b"0" + text("system") + b"q\x02" + b"0"
    return pkl(names + b"h\x01h\x02" + STACK_GLOBAL + MARK + text(touch(work)) + TUPLE + REDUCE)


def extension(opcode: bytes) -> Callable[[Path], bytes]:
    return lambda work: pkl(opcode + MARK + text(touch(work)) + TUPLE + REDUCE)


EXTENSIONS = {b"\x82\xf1": (0xF1, "posix", "system"), b"\x83\xf2\x01": (0x1F2, "os", "system"),
              b"\x84\xf4\x00\x00\x01": (0x10000F4, "subprocess", "getoutput")}
"""Extension opcodes of the corpus: the tests register each code (for a
process runner) where they can, as a library calling copyreg.add_extension would."""


def rmtree(work: Path) -> bytes:
    return pkl(call(glob("shutil", "rmtree"), text(str(work / "victim"))))


def truncating_handler(work: Path) -> bytes:
    keep = text(str(work / "victim" / "keep.txt"))
    return pkl(keywords(glob("logging.handlers", "RotatingFileHandler"), (keep,), {"mode": text("w")}))


def enum_with_file_handler(work: Path) -> bytes:
    """Enum's functional API mixes in a type: its __init__ gets each member's value."""
    members = items(MARK + text("A") + text(str(work / "sentinel")) + TUPLE)
    return pkl(keywords(glob("enum", "Enum"), (text("E"), members), {"type": glob("logging", "FileHandler")}))


def _sizes() -> bytes:
    return items(number(60_000) + b"q\x01", *[b"h\x01"] * 200)


def map_amplification(work: Path) -> bytes:
    """any(map(any, map(bytes, [n] * k))): k * n work from a file of k entries."""
    return pkl(call(glob("builtins", "any"), call(glob("builtins", "map"), glob("builtins", "any"),
                                                 call(glob("builtins", "map"), glob("builtins", "bytes"), _sizes()))))


def map_of_a_class(work: Path) -> bytes:
    """any(map(bytes, [n] * k)): a class (a value, unlike a function) mapped over the file's data."""
    return pkl(call(glob("builtins", "any"), call(glob("builtins", "map"), glob("builtins", "bytes"), _sizes())))


def tuple_key(work: Path) -> bytes:
    return pkl(EMPTY_DICT + nested_tuples(200_000) + number(1) + SETITEM)


def marked_tuples(work: Path) -> bytes:
    return pkl(MARK * 50_000 + NONE + TUPLE * 50_000)


def tuples_through_calls(work: Path) -> bytes:
    """tuple([t]) nests t one level deeper without a TUPLE opcode: 25 rounds
    of 9,000 TUPLE1s, each round wrapped by a call, make a dict key 225,000 deep."""
    ops = NONE
    for _ in range(25):
        ops = call(glob("builtins", "tuple"), MARK + ops + TUPLE1 * 9_000 + b"l")
    return pkl(EMPTY_DICT + ops + number(1) + SETITEM)


def strided_out_of_bounds(work: Path) -> bytes:
    base = call(glob("torch", "empty"), number(4))
    return pkl(call(glob("torch", "as_strided"), base, MARK + number(10**6) + TUPLE, MARK + number(1) + TUPLE,
                    number(0)))


# --- attacks on the archive itself ----------------------------------------------------


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info.filename) for info in archive.infolist()}


def traversal_member(path: Path, work: Path) -> None:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("../../evil", b"import os; os.system('touch sentinel')")


def declared_size_bomb(path: Path, work: Path) -> None:
    """The central directory claims a 4 GiB data.pkl in a file of a few hundred bytes."""
    rewrite_member(path, "data.pkl", _members(path)["data.pkl"])  # a plain zip: sizes in the central entry
    raw = bytearray(path.read_bytes())
    entry = raw.index(b"PK\x01\x02")  # the first central entry is data.pkl
    raw[entry + 20 : entry + 28] = struct.pack("<II", 0xFFFF0000, 0xFFFF0000)
    path.write_bytes(bytes(raw))


def overlapping_members(path: Path, work: Path) -> None:
    """Fifield's zip bomb, stored: each buffer's local header sits inside the
    data of the one before, so every buffer spans the same 64 KiB kernel
    (300 entries declare 20 MB from an 80 KB file; the growth is quadratic)."""
    members = _members(path)
    kernel = bytes(65536)
    names = [f"buffers/{i}" for i in range(300)]
    body = kernel
    for name in names:
        body = _local(name, len(body)) + body
    offsets, position = {}, 0
    for name in reversed(names):
        offsets[name] = position
        position += len(_local(name, 0))
    manifest = json.loads(members["manifest.json"])
    for name in names:
        data = body[offsets[name] + len(_local(name, 0)):]
        manifest["members"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    central = b"".join(_central(name, len(body) - offsets[name] - len(_local(name, 0)), offsets[name])
                       for name in names)
    for name, content in (("data.pkl", members["data.pkl"]), ("manifest.json", json.dumps(manifest).encode())):
        central += _central(name, len(content), len(body))
        body += _local(name, len(content)) + content
    count = len(names) + 2
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), len(body), 0)
    path.write_bytes(body + central + end)


def _local(name: str, size: int) -> bytes:
    raw = name.encode()
    return struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, size, size, len(raw), 0) + raw


def _central(name: str, size: int, header_offset: int) -> bytes:
    raw = name.encode()
    return struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, size, size, len(raw), 0, 0, 0, 0, 0,
                       header_offset) + raw


def _manifest_text(mutate: Callable[[str], str]) -> Callable[[Path, Path], None]:
    """Rewrite manifest.json as text (it may not even parse afterwards)."""

    def plant(path: Path, work: Path) -> None:
        members = _members(path)
        members["manifest.json"] = mutate(members["manifest.json"].decode()).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)

    return plant


nested_manifest = _manifest_text(lambda m: m.replace('"format": "ckpt"', '"x": ' + "[" * 100_000 + "]" * 100_000
                                                     + ', "format": "ckpt"'))
huge_number_manifest = _manifest_text(lambda m: m.replace('"format": "ckpt"', '"x": ' + "9" * 100_000
                                                          + ', "format": "ckpt"'))


def missing_member_with_newline(path: Path, work: Path) -> None:
    manifest = json.loads(_members(path)["manifest.json"])
    manifest["members"]["data.pkl\nckpt: ok, loaded"] = {"sha256": "0" * 64, "size": 1}
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())


# --- the table ----------------------------------------------------------------------

DENIED = "refusing to load"
TOO_BIG = "more than the file holds"
REFUSED_CALL = "ckpt refuses it"
CALLED = "is called here"


@dataclass(frozen=True)
class Attack:
    name: str
    payload: Callable[[Path], bytes] | None = None
    """data.pkl, given the attack's workspace."""
    archive: Callable[[Path, Path], None] | None = None
    """Or: a rewrite of the whole checkpoint (path, workspace)."""
    expect: str = ""
    """A fragment of the one-line refusal."""
    trust: tuple[str, ...] = ()
    """Modules the victim trusts: a trusted module does not open the deny list."""

    def plant(self, path: Path, work: Path) -> bytes | None:
        """Turn the valid checkpoint at `path` into this attack; return its data.pkl."""
        if self.archive is not None:
            self.archive(path, work)
            return None
        assert self.payload is not None
        data = self.payload(work)
        rewrite_member(path, "data.pkl", data)
        return data


ATTACKS: tuple[Attack, ...] = (
    Attack("os.system", shell("os", "system"), expect=DENIED, trust=("os",)),
    Attack("posix.system", shell("posix", "system"), expect=DENIED, trust=("posix",)),
    Attack("plain pickle of os.system", plain_pickle, expect=DENIED),
    Attack("subprocess.Popen", lambda w: pkl(call(glob("subprocess", "Popen"), items(text("touch"),
                                                                                     text(str(w / "sentinel"))))),
           expect=DENIED, trust=("subprocess",)),
    Attack("builtins.eval", python_code("eval"), expect=DENIED, trust=("builtins",)),
    Attack("builtins.exec", python_code("exec"), expect=DENIED, trust=("builtins",)),
    Attack("__import__ then getattr", lambda w: pkl(call(call(glob("builtins", "getattr"), call(
        glob("builtins", "__import__"), text("os")), text("system")), text(touch(w)))), expect=DENIED),
    Attack("getattr chain from an allowed class", lambda w: pkl(call(glob("builtins", "getattr"), call(
        glob("builtins", "getattr"), glob("logging", "Handler"), text("__init__")), text("__globals__"))),
        expect=DENIED),
    Attack("STACK_GLOBAL with a computed module name", computed_global, expect=DENIED),
    Attack("STACK_GLOBAL through an allowed module's attribute", lambda w: pkl(
        text("threading") + text("_os.system") + STACK_GLOBAL + MARK + text(touch(w)) + TUPLE + REDUCE),
        expect="threading:_os.system (called) reaches system through", trust=("threading",)),
    Attack("global names fetched from the memo", memo_names, expect=DENIED),
    Attack("memo index never stored", lambda w: pkl(b"j\xff\xff\xff\x7f"), expect="was never stored"),
    Attack("INST", lambda w: pkl(MARK + text(touch(w)) + b"iposix\nsystem\n"), expect=DENIED),
    Attack("OBJ", lambda w: pkl(MARK + glob("posix", "system") + text(touch(w)) + b"o"), expect=DENIED),
    *(Attack(f"EXT{len(code) - 1}", extension(code)) for code in EXTENSIONS),
    Attack("PERSID", lambda w: pkl(b"P" + touch(w).encode() + b"\n"), expect="persistent"),
    Attack("BINPERSID", lambda w: pkl(text(touch(w)) + b"Q"), expect="persistent"),
    Attack("nested pickle.loads", lambda w: pkl(call(glob("pickle", "loads"), blob(plain_pickle(w)))),
           expect=DENIED),
    Attack("importlib.import_module", lambda w: pkl(call(glob("importlib", "import_module"), text("os"))),
           expect=DENIED),
    Attack("runpy.run_path", lambda w: pkl(call(glob("runpy", "run_path"), text(str(w / "evil.py")))),
           expect=DENIED),
    Attack("shutil.rmtree", rmtree, expect=DENIED),
    Attack("webbrowser.open", lambda w: pkl(call(glob("webbrowser", "open"), text(f"file://{w}/x"))),
           expect=DENIED),
    Attack("numpy.load(allow_pickle=True) of an embedded payload", numpy_load, expect=DENIED),
    Attack("torch.storage._load_from_bytes", lambda w: pkl(call(glob("torch.storage", "_load_from_bytes"),
                                                                blob(plain_pickle(w)))), expect=DENIED),
    Attack("torch _rebuild_from_type_v2 as a call gadget", torch_call_gadget, expect=DENIED),
    Attack("torch.empty of 800 GB", lambda w: pkl(keywords(glob("torch", "empty"), (number(10**11),),
                                                           {"dtype": glob("torch", "float64")})), expect=TOO_BIG),
    Attack("torch.Tensor(size) called directly", lambda w: pkl(call(glob("torch", "Tensor"), number(10**11))),
           expect=CALLED),
    Attack("torch Linear(50000, 50000) called directly", lambda w: pkl(call(
        glob("torch.nn.modules.linear", "Linear"), number(50_000), number(50_000))), expect=CALLED, trust=("torch",)),
    Attack("torch.as_strided beyond its storage", strided_out_of_bounds, expect="out of bounds"),
    Attack("functools.partial of os.system", lambda w: pkl(call(call(glob("functools", "partial"),
                                                                     glob("posix", "system"), text(touch(w))))),
           expect=DENIED),
    Attack("operator.attrgetter", lambda w: pkl(call(glob("operator", "attrgetter"), text("system"))),
           expect=DENIED),
    Attack("operator.methodcaller", lambda w: pkl(call(glob("operator", "methodcaller"), text("system"),
                                                       text(touch(w)))), expect=DENIED),
    Attack("copyreg._reconstructor running FileHandler.__init__", lambda w: pkl(call(
        glob("copyreg", "_reconstructor"), glob("logging", "FileHandler"), glob("logging", "FileHandler"),
        text(str(w / "sentinel")))), expect=DENIED),
    Attack("BUILD on an allowed class", handler_class_changed, expect="gives state to logging:Handler itself"),
    Attack("BUILD on an allowed function", function_changed, expect="gives state to threading:RLock itself"),
    Attack("BUILD on the root logger", root_logger_changed, expect="logging:getLogger is given state"),
    Attack("BUILD on a class reached through type()", logger_class_changed,
           expect="calls type() on something other than"),
    Attack("FileHandler opening its file at load", lambda w: pkl(call(glob("logging", "FileHandler"),
                                                                      text(str(w / "sentinel")))),
           expect="opens its file at load", trust=("logging:FileHandler",)),
    Attack("RotatingFileHandler truncating a file at load", truncating_handler, expect="opens its file at load",
           trust=("logging.handlers:RotatingFileHandler",)),
    Attack("Enum functional API mixing in FileHandler", enum_with_file_handler),
    Attack("bytearray(10**12)", lambda w: pkl(call(glob("builtins", "bytearray"), number(10**12))), expect=TOO_BIG),
    Attack("bytes() of a numpy integer of 10**12", lambda w: pkl(call(glob("builtins", "bytes"), call(
        glob("numpy._core.multiarray", "scalar"), call(glob("numpy", "dtype"), text("i8"), NEWFALSE, TRUE),
        blob((10**12).to_bytes(8, "little"))))), expect=TOO_BIG),
    Attack("numpy _reconstruct with a huge shape", lambda w: pkl(call(
        glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), MARK + number(10**12) + TUPLE,
        blob(b"b"))), expect=TOO_BIG),
    Attack("numpy _reconstruct with a 2 GB item", lambda w: pkl(call(
        glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), MARK + number(100) + TUPLE,
        call(glob("numpy", "dtype"), text("V2000000000"), NEWFALSE, TRUE))), expect=TOO_BIG),
    Attack("numpy.ndarray(shape) called directly", lambda w: pkl(call(glob("numpy", "ndarray"),
                                                                      MARK + number(10**10) + TUPLE, text("u1"))),
           expect=CALLED, trust=("numpy",)),
    Attack("Fraction with a billion digits", lambda w: pkl(call(glob("fractions", "Fraction"),
                                                                text("1e1000000000"))), expect=REFUSED_CALL),
    Attack("map() amplifying calls", map_amplification, expect="builtins:any is stored as a value"),
    Attack("map() of a class amplifying calls", map_of_a_class, expect="maps a function other than SimpleQueue.put"),
    Attack("global name with a newline and a terminal escape", lambda w: pkl(
        text("os\nckpt: loaded ok") + text("x\x1b[2J") + STACK_GLOBAL), expect="is not a name ckpt ever loads"),
    Attack("SeedSequence with a 4 GB pool", lambda w: pkl(keywords(
        glob("numpy.random.bit_generator", "SeedSequence"), (), {"pool_size": number(2**30)})), expect=CALLED, trust=("numpy",)),
    Attack("zip member named ../../evil", archive=traversal_member, expect="unexpected archive member"),
    Attack("zip bomb: a huge declared size", archive=declared_size_bomb, expect="claims"),
    Attack("zip bomb: overlapping members", archive=overlapping_members, expect="overlap"),
    Attack("manifest nested 100,000 deep", archive=nested_manifest, expect="nested too deeply"),
    Attack("manifest with a 100,000-digit number", archive=huge_number_manifest, expect="not valid JSON"),
    Attack("manifest member name with a newline", archive=missing_member_with_newline, expect="missing"),
)
