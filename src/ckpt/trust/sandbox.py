"""The construct step's sandbox: what no data load does, refused while a file's objects are built.

A data-only load runs code: the reviewed reconstructors, and the classes
the user trusts (their own `__new__`, `__setstate__`, `__init__`). None
of it may write, delete, rename or re-mode a file, connect, start a thread
or a process, or leave the process changed. Each layer refuses by effect,
whoever causes it, never by name:

1. the kernel: on Linux (x86_64, aarch64) the objects are built on a thread
   of their own under a seccomp filter that fails, with EPERM, every system
   call that opens a file for writing, creates, deletes, renames or
   re-modes one, connects or binds a socket, starts a process, signals one,
   or changes the process's identity, directory, limits or mounts. It sees native
   code too (a C++ file writer no Python hook hears), and any thread that
   thread starts inherits it;
2. Python's audit hook refuses the same events on that thread, with the
   reason in one line (the only layer where seccomp is not available);
   starting a thread or a process from it is refused by wrappers around
   `threading`'s, `_thread`'s and `_posixsubprocess`'s starters (the last
   audits nothing), and registering an exit hook by one around
   `atexit.register`; every other thread passes through them untouched;
3. what no system call shows, the interpreter's own state (`ProcessState`:
   sys.path and the import hooks, warnings filters, copyreg, registered
   loggers, the root logger, exit hooks and weakref finalizers,
   os.environ, multiprocessing's start method and executable, the
   interpreter hooks, builtins), is compared
   around the build, on the building thread: a change is put back and the
   load refused. logging's lock is held meanwhile, so the program's other
   threads register their loggers before or after the build, never during
   it, where they would be taken for the file's; a weakref finalizer they
   register meanwhile is noted as theirs (`_ELSEWHERE`). (A handler
   a constructor registers with logging, to be flushed at exit, comes only
   from a name the user trusts exactly: the reviewed handlers and those of
   a trusted package are built from their state, never constructed.)

A refusal raised inside a class's own code may be swallowed there: the
first one is remembered and the load refused afterwards all the same.
"""

from __future__ import annotations

import atexit
import contextlib
import copyreg
import ctypes
import errno
import logging
import os
import platform
import struct
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ckpt.errors import CheckpointError, printable
from ckpt.objects.collector import collector_paused

T = TypeVar("T")

FORBIDDEN_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
    "subprocess.Popen", "pty.spawn", "socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind",
    "socket.getaddrinfo", "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
    "imaplib.open", "poplib.connect", "nntplib.connect", "telnetlib.Telnet.open", "webbrowser.open",
    "os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.symlink", "os.link", "os.truncate", "os.chmod",
    "os.chown", "os.utime", "os.putenv", "os.unsetenv", "os.chdir", "shutil.rmtree", "shutil.copyfile",
    "shutil.copytree", "shutil.move", "shutil.chown", "shutil.make_archive", "shutil.unpack_archive",
    "sqlite3.connect", "ctypes.dlopen", "mmap.__new__", "sys.settrace", "sys.setprofile", "sys.addaudithook",
    "resource.setrlimit", "signal.pthread_kill",
})
"""Audit events refused while a file's objects are built as data."""

_HEARD = FORBIDDEN_EVENTS | {"open", "compile"}
"""Every event the hook looks at; the others (`builtins.id`, in the loader's
every step) return at once."""

_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_loading = threading.local()
_ONE_AT_A_TIME = threading.Lock()
"""One sandboxed build at a time, so a change to the process found after one
is that one's (the builds hold the GIL in turn anyway)."""


@dataclass
class _Watch:
    """What the sandbox watches on a thread (and on the threads it may start)."""

    data: bytes
    """The file: code compiled from text in it is the file's code."""
    threads: bool
    """Whether threads may be started, each watched in turn (ckpt's own probes start them)."""
    doing: str
    violation: str | None = None
    """The first refusal, kept even where a class's own code swallowed it."""
    trusted: int = 0
    """Calls in progress of a name the user trusts exactly: a thread they start is theirs."""


def run(work: Callable[[], T], data: bytes, *, threads: bool = False, doing: str = "built",
        kernel: bool = True) -> T:
    """`work()` (building a file's objects, or with `threads` exercising
    them), in the sandbox: on a thread of its own, jailed where the kernel
    allows (unless not `kernel`: the user trusts by its exact name something
    the file calls, whose threads are the user's), with the audit hook armed
    for `data`, and the process compared before and after."""
    if loading():  # the jail thread waits for nobody: a load inside a load would wait for itself
        raise _refuse("another file was loaded")
    _install()
    with _ONE_AT_A_TIME:
        watch = _Watch(data, threads, doing)
        outcome: dict[str, Any] = {}
        worker = threading.Thread(target=_jailed, args=(work, watch, outcome, kernel), name="ckpt-data-load",
                                  daemon=True)
        # Off for the jailed thread's whole life: what a load builds is new and
        # reachable, and a collection there would run the finalizers of the
        # process's own garbage under the jail, where their cleanup fails.
        with collector_paused():
            worker.start()
            worker.join()
    changed = outcome.get("changed", [])
    if watch.violation:
        raise CheckpointError(f"data.pkl: {watch.violation}; ckpt refuses it")
    if changed:
        raise CheckpointError(f"data.pkl changed the process's {', '.join(changed)} while its objects were {doing}; "
                              "ckpt put it back and refuses it")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]  # type: ignore[no-any-return]


def _jailed(work: Callable[[], Any], watch: _Watch, outcome: dict[str, Any], kernel: bool) -> None:
    """The process's state is compared around `work` alone, here; what
    changed is put back and handed to the caller's thread (`changed`)."""
    try:
        if kernel:
            jail()
        with _loggers_held(watch.threads):
            before = ProcessState()
            _loading.watch = watch
            try:
                outcome["result"] = work()
            finally:
                _loading.watch = None
                outcome["changed"] = before.restore()
    except BaseException as exc:  # handed to the caller's thread
        outcome["error"] = exc


@contextlib.contextmanager
def _loggers_held(threads: bool) -> Iterator[None]:
    """logging's module lock, held by the building thread while the state is
    compared around the build: the process's other threads register their
    loggers (a module imported on first use does) before or after it, not
    during it, where the comparison would take them for the file's and
    unregister them. Not while restored objects are exercised (`threads`):
    the probes' threads log, and the exercising thread waits for them."""
    if threads:
        yield
        return
    with logging._lock:  # type: ignore[attr-defined]
        yield


def loading() -> bool:
    """Whether this thread is building (or exercising) a file's objects."""
    return getattr(_loading, "watch", None) is not None


@contextlib.contextmanager
def trusted() -> Iterator[None]:
    """While a name the user trusts exactly is called: a thread it starts is
    the user's (trusting `QueueListener.start` is asking for its thread), not
    watched; writes, connections and processes in this thread stay refused."""
    watch: _Watch | None = getattr(_loading, "watch", None)
    if watch is None:
        yield
        return
    watch.trusted += 1
    try:
        yield
    finally:
        watch.trusted -= 1


def carried(work: Callable[[], T]) -> Callable[[], T]:
    """`work`, to run on another thread under this thread's watch (verify's
    probes hand work to a thread they keep for many probes)."""
    watch = getattr(_loading, "watch", None)
    if watch is None:
        return work

    def watched() -> T:
        previous = getattr(_loading, "watch", None)
        _loading.watch = watch
        try:
            return work()
        finally:
            _loading.watch = previous

    return watched


def _refuse(what: str) -> CheckpointError:
    watch: _Watch = _loading.watch
    if watch.violation is None:
        watch.violation = f"{what} while its objects were {watch.doing}"
    return CheckpointError(f"data.pkl: {watch.violation}; ckpt refuses it")


# --- the audit hook ------------------------------------------------------------


def _watch(event: str, args: tuple[Any, ...]) -> None:
    if event not in _HEARD:
        return
    watch = getattr(_loading, "watch", None)
    if watch is None:
        return
    if event in FORBIDDEN_EVENTS:
        raise _refuse(f"{event} was called")
    if event == "open" and _writes(args):
        raise _refuse(f"a file was opened for writing ({printable(str(args[0]))!r})")
    if event == "compile" and _from_file(args[0], watch.data):
        raise _refuse("code from the file itself was compiled")


def _writes(args: tuple[Any, ...]) -> bool:
    """An `open` event for writing: a mode with w, a, x or +, or os.open's flags."""
    mode, flags = (args + (None, None))[1:3]
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & _WRITING)


def _from_file(source: Any, data: bytes) -> bool:
    """Source text that appears in the pickle: the file supplied the code
    (networkx compiles code of its own while it loads: that is allowed)."""
    if isinstance(source, str):
        source = source.encode("utf-8", "surrogatepass")
    return isinstance(source, bytes) and len(source) >= 4 and source in data


# --- starting threads and processes, registering exit hooks ------------------------

_THREAD = "a thread was started"
_STARTERS = (
    ("threading", ("_start_new_thread", "_start_joinable_thread"), _THREAD),
    ("_thread", ("start_new_thread", "start_new", "start_joinable_thread"), _THREAD),
    ("_posixsubprocess", ("fork_exec",), "a process was started"),
    ("atexit", ("register",), "an exit hook was registered"),
    ("threading", ("_register_atexit",), "an exit hook was registered"),
)
"""What a load may not call, by module and attribute: every caller looks
these up on the module when it calls them, so a wrapper there sees them all."""


def _refusing(start: Callable[..., Any], what: str) -> Callable[..., Any]:
    """`start`, refused to a watched thread; a thread started where threads
    are allowed is watched in turn (and, started from a jailed thread, jailed)."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        watch = getattr(_loading, "watch", None)
        if watch is None or (watch.trusted and what == _THREAD):
            return start(*args, **kwargs)
        if not (watch.threads and what == _THREAD and args):
            raise _refuse(what)
        function = args[0]

        def watched(*inner: Any, **named: Any) -> Any:
            _loading.watch = watch
            return function(*inner, **named)

        return start(watched, *args[1:], **kwargs)

    guarded.__wrapped__ = start  # type: ignore[attr-defined]
    guarded.__doc__ = start.__doc__
    return guarded


_ELSEWHERE: set[Any] = set()
"""The weakref finalizers the process's other threads registered while a
file's objects were built: theirs, not the file's (emptied after each)."""


def _noting_elsewhere(init: Callable[..., None]) -> Callable[..., None]:
    """`weakref.finalize.__init__`, noting a finalizer registered during a
    load by a thread that is not building its objects."""

    def noted(self: Any, *args: Any, **kwargs: Any) -> None:
        if _ONE_AT_A_TIME.locked() and getattr(_loading, "watch", None) is None:
            _ELSEWHERE.add(self)  # before it is registered: a comparison never sees it unnoted
        init(self, *args, **kwargs)

    noted.__wrapped__ = init  # type: ignore[attr-defined]
    return noted


_installed: list[bool] = []
_install_lock = threading.Lock()


def _install() -> None:
    """The audit hook and the wrappers, once per process (neither changes
    anything for a thread that is not building a file's objects)."""
    with _install_lock:
        if _installed:
            return
        sys.addaudithook(_watch)
        weakref.finalize.__init__ = _noting_elsewhere(weakref.finalize.__init__)  # type: ignore[method-assign]
        for module_name, names, what in _STARTERS:
            module = sys.modules.get(module_name)
            if module is None:
                try:
                    module = __import__(module_name)
                except ImportError:
                    continue
            for name in names:
                start = getattr(module, name, None)
                if start is not None:
                    setattr(module, name, _refusing(start, what))
        _JAIL.append(_jailer())
        _installed.append(True)


# --- the kernel's half: seccomp -------------------------------------------------------

_DENIED = {
    "x86_64": (0xC000003E, dict(
        fork=57, vfork=58, execve=59, execveat=322, connect=42, bind=49, listen=50, mkdir=83, mkdirat=258,
        rmdir=84, unlink=87, unlinkat=263, rename=82, renameat=264, renameat2=316, link=86, linkat=265,
        symlink=88, symlinkat=266, chmod=90, fchmod=91, fchmodat=268, fchmodat2=452, chown=92, fchown=93,
        lchown=94, fchownat=260, truncate=76, ftruncate=77, utime=132, utimes=235, utimensat=280, futimesat=261,
        mknod=133, mknodat=259, creat=85, chdir=80, fchdir=81, chroot=161, umask=95, setrlimit=160,
        setpriority=141, setuid=105, setgid=106, setreuid=113, setregid=114, setresuid=117, setresgid=119,
        setfsuid=122, setfsgid=123, setgroups=116, setsid=112, setpgid=109, unshare=272, setns=308, mount=165,
        umount2=166, pivot_root=155, ptrace=101, process_vm_writev=311, tkill=200, io_uring_setup=425,
        io_uring_enter=426, io_uring_register=427, bpf=321, perf_event_open=298, init_module=175,
        finit_module=313, delete_module=176, kexec_load=246, kexec_file_load=320, reboot=169, swapon=167,
        swapoff=168, sethostname=170, setdomainname=171, acct=163, quotactl=179, add_key=248, keyctl=250,
        request_key=249, open_by_handle_at=304, name_to_handle_at=303, userfaultfd=323, fanotify_init=300,
        mount_setattr=442, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, settimeofday=164,
        clock_settime=227, adjtimex=159, clock_adjtime=305, process_madvise=440, pidfd_send_signal=424,
        rt_sigqueueinfo=129, rt_tgsigqueueinfo=297, kill=62, tgkill=234),
        dict(clone=56, clone3=435, openat2=437, open=2, openat=257, prlimit64=302, ioctl=16, sendto=44)),
    "aarch64": (0xC00000B7, dict(
        execve=221, execveat=281, connect=203, bind=200, listen=201, mkdirat=34, unlinkat=35, renameat=38,
        renameat2=276, linkat=37, symlinkat=36, fchmod=52, fchmodat=53, fchmodat2=452, fchown=55, fchownat=54,
        truncate=45, ftruncate=46, utimensat=88, mknodat=33, chdir=49, fchdir=50, chroot=51, umask=166,
        setrlimit=164, setpriority=140, setuid=146, setgid=144, setreuid=145, setregid=143, setresuid=147,
        setresgid=149, setfsuid=151, setfsgid=152, setgroups=159, setsid=157, setpgid=154, unshare=97, setns=268,
        mount=40, umount2=39, pivot_root=41, ptrace=117, process_vm_writev=271, tkill=130, io_uring_setup=425,
        io_uring_enter=426, io_uring_register=427, bpf=280, perf_event_open=241, init_module=105,
        finit_module=273, delete_module=106, kexec_load=104, kexec_file_load=294, reboot=142, swapon=224,
        swapoff=225, sethostname=161, setdomainname=162, acct=89, quotactl=60, add_key=217, keyctl=219,
        request_key=218, open_by_handle_at=265, name_to_handle_at=264, userfaultfd=282, fanotify_init=262,
        mount_setattr=442, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, settimeofday=170,
        clock_settime=112, adjtimex=171, clock_adjtime=266, process_madvise=440, pidfd_send_signal=424,
        rt_sigqueueinfo=138, rt_tgsigqueueinfo=240, kill=129, tgkill=131),
        dict(clone=220, clone3=435, openat2=437, openat=56, prlimit64=261, ioctl=29, sendto=206)),
}
"""Per machine: the audit architecture, the system calls always refused, and
those refused depending on their arguments (`_filter`)."""

_CLONE_THREAD = 0x10000
_TIOCSTI = 0x5412
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JSET_K, _BPF_RET_K = 0x20, 0x15, 0x45, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _arg(index: int, high: bool = False) -> bytes:
    """Load argument `index` (its low or high 32 bits) of `struct seccomp_data`."""
    return _op(_BPF_LD_W_ABS, 16 + 8 * index + (4 if high else 0))


def _filter(arch: int, always: dict[str, int], checked: dict[str, int]) -> bytes:
    """A seccomp program: the syscall's number decides, then for a few its arguments.
    Each conditional block ends in a return, so the accumulator is reloaded only at the top."""
    deny = _op(_BPF_RET_K, _ERRNO | errno.EPERM)
    allow = _op(_BPF_RET_K, _ALLOW)
    blocks = []
    for number in sorted(set(always.values())):
        blocks.append((number, [deny]))
    blocks.append((checked["clone"], [_arg(0), _op(_BPF_JSET_K, _CLONE_THREAD, 0, 1), allow, deny]))
    blocks.append((checked["clone3"], [_op(_BPF_RET_K, _ERRNO | errno.ENOSYS)]))  # its flags sit in memory: glibc falls back to clone
    blocks.append((checked["openat2"], [_op(_BPF_RET_K, _ERRNO | errno.ENOSYS)]))
    written = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    if "open" in checked:
        blocks.append((checked["open"], [_arg(1), _op(_BPF_JSET_K, written, 0, 1), deny, allow]))
    blocks.append((checked["openat"], [_arg(2), _op(_BPF_JSET_K, written, 0, 1), deny, allow]))
    blocks.append((checked["prlimit64"], [_arg(2), _op(_BPF_JEQ_K, 0, 0, 3), _arg(2, high=True),
                                          _op(_BPF_JEQ_K, 0, 0, 1), allow, deny]))  # reading a limit only
    blocks.append((checked["ioctl"], [_arg(1), _op(_BPF_JEQ_K, _TIOCSTI, 0, 1), deny, allow]))  # typing into the terminal
    blocks.append((checked["sendto"], [_arg(4), _op(_BPF_JEQ_K, 0, 0, 3), _arg(4, high=True),
                                       _op(_BPF_JEQ_K, 0, 0, 1), allow, deny]))  # to an address: a new destination
    program = [_op(_BPF_LD_W_ABS, 4), _op(_BPF_JEQ_K, arch, 1, 0), deny, _op(_BPF_LD_W_ABS, 0)]
    if arch == _DENIED["x86_64"][0]:
        program += [_op(0x35, 0x40000000, 0, 1), deny]  # jge: the x32 ABI's numbers
    for number, block in blocks:
        program.append(_op(_BPF_JEQ_K, number, 0, len(block)))
        program += block
    program.append(allow)
    return b"".join(program)


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_JAIL: list[Callable[[], bool]] = []
"""What puts a thread in the jail, made by `_install`."""


def jail() -> bool:
    """Put this thread (for good) under the seccomp filter; False where the
    kernel or the machine does not allow it (the other layers remain)."""
    _install()
    return _JAIL[0]()


def _jailer() -> Callable[[], bool]:
    """The filter and libc's prctl, made once, outside any load: what ctypes
    does to find them is not the load's doing."""
    spec = _DENIED.get(platform.machine()) if sys.platform == "linux" else None
    if spec is None:
        return lambda: False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: False
    program = _filter(*spec)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _Program(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))

    def enter() -> bool:
        if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        return bool(prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0 and buffer)

    return enter


# --- the interpreter's own state ----------------------------------------------------


class ProcessState:
    """What no system call shows and a load must leave as it found: taken
    before the build, compared after, put back where it changed."""

    def __init__(self) -> None:
        self.lists = {name: list(value) for name, value in self._lists().items()}
        self.dicts = {name: dict(value) for name, value in self._dicts().items()}
        self.values = self._values()
        manager = logging.Logger.manager
        self.loggers = dict(manager.loggerDict)
        self.parents = {name: logger.parent for name, logger in self.loggers.items()
                        if isinstance(logger, logging.Logger)}
        self.waiting = {name: dict(holder.loggerMap) for name, holder in self.loggers.items()
                        if isinstance(holder, logging.PlaceHolder)}
        self.exit_hooks = atexit._ncallbacks()  # type: ignore[attr-defined]
        self.finalizers = set(weakref.finalize._registry)  # type: ignore[attr-defined]

    @staticmethod
    def _lists() -> dict[str, list[Any]]:
        return {"sys.path": sys.path, "sys.meta_path": sys.meta_path, "sys.path_hooks": sys.path_hooks,
                "warnings filters": warnings.filters,  # type: ignore[dict-item]
                "root logger's handlers": logging.root.handlers,
                "root logger's filters": logging.root.filters}

    @staticmethod
    def _dicts() -> dict[str, dict[Any, Any]]:
        return {"os.environ": os.environ._data,  # type: ignore[attr-defined]
                "copyreg dispatch table": copyreg.dispatch_table,
                "copyreg extension registry": copyreg._extension_registry,  # type: ignore[attr-defined]
                "copyreg inverted registry": copyreg._inverted_registry,  # type: ignore[attr-defined]
                "logging level names": logging._levelToName,  # type: ignore[attr-defined]
                "builtins": vars(__import__("builtins"))}

    @staticmethod
    def _values() -> dict[str, tuple[Any, Callable[[Any], None]]]:
        """Single settings, each with the way to put it back."""
        found: dict[str, tuple[Any, Callable[[Any], None]]] = {
            "recursion limit": (sys.getrecursionlimit(), sys.setrecursionlimit),
            "switch interval": (sys.getswitchinterval(), sys.setswitchinterval),
            "exception hook": (sys.excepthook, lambda v: setattr(sys, "excepthook", v)),
            "display hook": (sys.displayhook, lambda v: setattr(sys, "displayhook", v)),
            "unraisable hook": (sys.unraisablehook, lambda v: setattr(sys, "unraisablehook", v)),
            "breakpoint hook": (sys.breakpointhook, lambda v: setattr(sys, "breakpointhook", v)),
            "thread exception hook": (threading.excepthook, lambda v: setattr(threading, "excepthook", v)),
            "standard streams": ((sys.stdin, sys.stdout, sys.stderr), _set_streams),
            "bytecode writing": (sys.dont_write_bytecode, lambda v: setattr(sys, "dont_write_bytecode", v)),
            "socket timeout": (__import__("socket").getdefaulttimeout(), __import__("socket").setdefaulttimeout),
            "logging disable level": (logging.root.manager.disable, logging.disable),
            "root logger's level": (logging.root.level, logging.root.setLevel),
            "root logger's disabled flag": (logging.root.disabled, lambda v: setattr(logging.root, "disabled", v)),
            "logger class": (logging.getLoggerClass(), logging.setLoggerClass),
            "log record factory": (logging.getLogRecordFactory(), logging.setLogRecordFactory),
            "logging's exception raising": (logging.raiseExceptions, lambda v: setattr(logging, "raiseExceptions", v)),
            "logging's last resort": (logging.lastResort, lambda v: setattr(logging, "lastResort", v)),
            "warning display": (warnings.showwarning, lambda v: setattr(warnings, "showwarning", v)),
        }
        context = sys.modules.get("multiprocessing.context")
        if context is not None:
            default = context._default_context  # type: ignore[attr-defined]
            found["multiprocessing start method"] = (default._actual_context,
                                                     lambda v: setattr(default, "_actual_context", v))
        spawn = sys.modules.get("multiprocessing.spawn")
        if spawn is not None:
            found["multiprocessing executable"] = (spawn.get_executable(), spawn.set_executable)
        return found

    def restore(self) -> list[str]:
        """What changed since, each put back; [] when nothing did."""
        changed = []
        for name, items in self._lists().items():
            if items != self.lists[name] or any(a is not b for a, b in zip(items, self.lists[name])):
                items[:] = self.lists[name]
                changed.append(name)
        for name, entries in self._dicts().items():
            old = self.dicts[name]
            if entries.keys() != old.keys() or any(entries[k] is not v for k, v in old.items()):
                entries.clear()
                entries.update(old)
                changed.append(name)
        for name, (now, _) in self._values().items():
            setting = self.values.get(name)
            if setting is not None and now is not setting[0] and now != setting[0]:
                setting[1](setting[0])
                changed.append(name)
        if "warnings filters" in changed:
            warnings._filters_mutated()  # type: ignore[attr-defined]
        if self._loggers_changed():
            self._restore_loggers()
            changed.append("registered loggers")
        if atexit._ncallbacks() != self.exit_hooks:  # type: ignore[attr-defined]
            changed.append("exit hooks (which cannot be put back)")
        registry = weakref.finalize._registry  # type: ignore[attr-defined]
        # One that fired meanwhile is gone for good; one another thread registered is not the file's.
        added = [f for f in list(registry) if f not in self.finalizers and f not in _ELSEWHERE]
        _ELSEWHERE.clear()
        if added:
            for finalizer in added:
                finalizer.detach()
            changed.append("weakref finalizers (to run at exit)")
        return changed

    def _loggers_changed(self) -> bool:
        manager = logging.Logger.manager
        return (manager.loggerDict.keys() != self.loggers.keys()
                or any(manager.loggerDict[k] is not v for k, v in self.loggers.items())
                or any(self.loggers[name].parent is not parent  # type: ignore[union-attr]
                       for name, parent in self.parents.items()))

    def _restore_loggers(self) -> None:
        manager = logging.Logger.manager
        with logging._lock:  # type: ignore[attr-defined]
            manager.loggerDict.clear()
            manager.loggerDict.update(self.loggers)
            for name, parent in self.parents.items():
                self.loggers[name].parent = parent  # type: ignore[union-attr]
            for name, waiting in self.waiting.items():
                holder = self.loggers[name]
                holder.loggerMap.clear()  # type: ignore[union-attr]
                holder.loggerMap.update(waiting)  # type: ignore[union-attr]
            manager._clear_cache()  # type: ignore[attr-defined]


def _set_streams(streams: tuple[Any, Any, Any]) -> None:
    sys.stdin, sys.stdout, sys.stderr = streams
