"""The click commands. Each parses its options, calls one core function and
renders the result; exit codes come from the result, never from here."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

import ckpt
from ckpt.cli import documents
from ckpt.cli.progress import ProgressBar
from ckpt.cli.render import json as json_view
from ckpt.cli.render import sarif
from ckpt.cli.render import text as text_view
from ckpt.cli.render.terminal import TextOutput

_state = {"traceback": False, "quiet": False}

def wants_traceback() -> bool:
    return _state["traceback"]


def _set_state(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Options that hold for the whole run (main() reads --traceback when an error comes)."""
    if value and param.name:
        _state[param.name] = True


def common(formats: tuple[str, ...] = ("text", "json")) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Options every command takes: --format, -q/--quiet and --traceback."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--traceback",
            is_flag=True,
            expose_value=False,
            callback=_set_state,
            help="On error, show the full Python traceback (of the user's code too).",
        )(fn)
        fn = click.option(
            "-q", "--quiet",
            is_flag=True,
            expose_value=False,
            callback=_set_state,
            help="Print errors only (no report, no warnings, no progress): the exit code says the rest.",
        )(fn)
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(formats),
            default="text",
            show_default=True,
            help="Output format. Text is a rich report on a terminal and plain text when piped or NO_COLOR is set.",
        )(fn)

    return decorate


class ReaderGone(Exception):
    """stdout's reader closed the pipe (`ckpt inspect f | head -1`): it has
    what it wanted. Raised instead of the BrokenPipeError, which click would
    turn into exit 1."""


def render(fmt: str, text: Callable[[TextOutput], None], data: Callable[[], dict[str, Any]],
           log: Callable[[], dict[str, Any]] | None = None) -> None:
    """The report as `fmt` asks, unless --quiet: text, or the document main()
    writes once the command is done (JSON with its schema_version, or the SARIF `log`)."""
    if _state["quiet"]:
        return
    if fmt == "json":
        documents.keep({"schema_version": documents.SCHEMA_VERSION, **data()})
    elif fmt == "sarif" and log is not None:
        documents.keep(log())
    else:
        try:
            text(TextOutput())
        except BrokenPipeError as exc:
            raise ReaderGone() from exc


_NO_PROGRESS = click.option("--no-progress", is_flag=True,
                            help="Never show a progress bar (one shows on a terminal when this takes over half a second).")


def progress_bar(no_progress: bool) -> ProgressBar:
    return ProgressBar(enabled=not (no_progress or _state["quiet"]))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(ckpt.__version__, "--version", "-V", prog_name="ckpt", message="%(prog)s %(version)s")
def cli() -> None:
    """Checkpoint Python models that plain pickle refuses.

    ckpt finds every object that stops pickle (locks, queues, threads,
    executors, logging handlers, open files, lambdas, ...) by path, rewraps
    the thread primitives into fresh equivalents, and writes checkpoint files
    that are hashed, written atomically and loaded without running code that
    nobody trusted.

    TARGET is package.module:attr, package.module:attr.sub or
    path/to/file.py:attr. A class or function there is called with no
    arguments to build the model; the current directory is importable.

    Exit codes: 0 ok, 1 findings or a failed check, 2 bad input or error.
    """


_ALL = click.option(
    "--all", "every", is_flag=True,
    help="In text output, list every finding and substitution; without it, four or more of one kind whose paths "
    "differ only in indexes or keys are one row (`model['items'][*].lk`). JSON and SARIF always list each.",
)


@cli.command()
@click.argument("target")
@_ALL
@click.option("--suggest", is_flag=True, help="Also print __getstate__/__setstate__ code that fixes each class by hand.")
@common(("text", "json", "sarif"))
@click.pass_context
def scan(ctx: click.Context, target: str, every: bool, suggest: bool, fmt: str) -> None:
    """Report every object in TARGET that plain pickle refuses.

    Walks the object graph the way pickle.dumps(obj, protocol=5) does and
    lists each unpicklable object with its path (model.steps[1][1].handler.lock),
    its type, its kind and what `ckpt save` will do with it. There are
    findings if and only if plain pickle fails on the object, or writes
    something that does not load back as it was (a weak proxy, a bound
    method its name does not find).

    Exit 0 clean, 1 findings, 2 the target could not be built.
    """
    report = ckpt.scan(target)
    suggestions = ckpt.suggest(report) if suggest else None
    render(fmt, lambda out: text_view.scan_text(out, report, suggestions, every),
           lambda: json_view.scan_json(report, suggestions), lambda: sarif.scan_log(report))
    ctx.exit(report.exit_code)


def configuration() -> ckpt.Config:
    """[tool.ckpt] for save, load and inspect: an unknown key is a warning on
    stderr (unless --quiet) and the command goes on; `ckpt check` refuses it."""
    config = ckpt.read_config()
    if not _state["quiet"]:
        for warning in config.warnings:
            click.echo(f"ckpt: warning: {warning}", err=True)
    return config


def _trust(cli_trust: tuple[str, ...], config: ckpt.Config) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*config.trust, *cli_trust)))


_TRUST = click.option(
    "--trust",
    multiple=True,
    metavar="NAME",
    help="For a file that loads as data only (not signed by a key you trust): admit more than ckpt's reviewed "
    "table (repeatable; also `trust` in [tool.ckpt]). A PACKAGE admits the public classes defined in it and its "
    "subpackages (never its functions); package.module:Name admits that one class or function.",
)

_TRUSTED_KEY = click.option(
    "--trusted-key", "trusted_key", multiple=True, metavar="FILE",
    help="Also trust files signed by this public key (a .pub file as `ckpt key export` prints it; repeatable; "
    "also `trusted-keys` in [tool.ckpt]): they load whole. Your own key is always trusted.",
)


def _keys(given: tuple[str, ...], config: ckpt.Config) -> tuple[str, ...]:
    return (*config.trusted_keys, *given)


_STORAGE_OPTION = click.option(
    "--storage-option", "storage_option", multiple=True, metavar="KEY=VALUE",
    help="An fsspec option for a URL's filesystem (repeatable; over [tool.ckpt.storage-options.SCHEME], fsspec's "
    "config and the backend's environment variables): endpoint_url=http://..., anon=true. VALUE is read as JSON "
    "where it parses (true, 5, {...}), else as text.",
)


def _storage_options(url: str, given: tuple[str, ...], config: ckpt.Config) -> dict[str, Any] | None:
    """The fsspec options for `url`: [tool.ckpt]'s for its scheme, then --storage-option."""
    options = config.storage_options_for(url)
    if options is None:
        if given:
            raise click.BadParameter(f"applies to URLs (s3://, gs://, ...), not to {url!r}",
                                     param_hint="'--storage-option'")
        return None
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="'--storage-option'")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def _not_stdout(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A checkpoint is a zip archive renamed into place once complete: it needs
    a file, and `-o -` would otherwise write one named `-`."""
    if value == "-":
        raise click.BadParameter("a checkpoint is written to a file (atomically, by rename), not to stdout: name a file")
    return value


@cli.command()
@click.argument("target")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False), callback=_not_stdout,
              help="Checkpoint file or URL (s3://bucket/key.ckpt, any fsspec URL) to write; `-` (stdout) is refused.")
@click.option("--strip", "strip", multiple=True, metavar="PATH",
              help="Save the object at PATH (as ckpt scan prints it) as None and record it. Repeatable.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists (atomically: the old file stays intact until the new one is complete).")
@_STORAGE_OPTION
@_ALL
@_NO_PROGRESS
@common()
@click.pass_context
def save(ctx: click.Context, target: str, output: str, strip: tuple[str, ...], force: bool,
         storage_option: tuple[str, ...], every: bool, no_progress: bool, fmt: str) -> None:
    """Write TARGET as a checkpoint file.

    Thread primitives are rewrapped (a new lock on load, the queue's items
    kept, the semaphore's value kept), threads are stripped, and anything
    else pickle refuses is an error naming its path, unless you --strip it.
    The file is written to a temporary file, fsynced and renamed into place:
    OUTPUT is never left half-written. A URL's object is uploaded once the
    archive is complete and appears whole or not at all (on S3, a multipart
    upload completed last, aborted on any failure). The manifest is signed
    with your own key (made on the first save; CKPT_SIGNING_KEY overrides),
    so the file loads whole for you and for whoever trusts your key. Strips
    listed for TARGET in [tool.ckpt] apply too.

    Exit 0 saved, 1 the object cannot be saved, 2 bad input.
    """
    config = configuration()
    strips = (*config.strip.get(target, ()), *strip)
    options = _storage_options(output, storage_option, config)
    with progress_bar(no_progress) as progress:
        report = ckpt.save(ckpt.resolve(target), output, strip=strips, target=target, overwrite=force, progress=progress,
                             storage_options=options)
    render(fmt, lambda out: text_view.save_text(out, report, every), lambda: json_view.save_json(report))
    ctx.exit(0)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--verify", is_flag=True, help="Also run every check: hashes, signature, globals, restored primitives, strips.")
@click.option("--against", metavar="TARGET", help="With --verify: compare the loaded object with a fresh one from TARGET.")
@click.option("--mmap", "use_mmap", is_flag=True, help="Map array buffers copy-on-write instead of reading them (hashed only by --verify).")
@click.option("--strict", is_flag=True, help="Fail when an installed module's version differs from the one saved.")
@_TRUSTED_KEY
@_TRUST
@_STORAGE_OPTION
@_ALL
@_NO_PROGRESS
@common()
@click.pass_context
def load(ctx: click.Context, file: str, verify: bool, against: str | None, use_mmap: bool, strict: bool,
         trusted_key: tuple[str, ...], trust: tuple[str, ...], storage_option: tuple[str, ...], every: bool,
         no_progress: bool, fmt: str) -> None:
    """Load FILE and summarize it.

    Every member is hashed and compared with the manifest before anything
    is unpickled. Who signed it decides how it loads: a file signed by your
    own key or a key you trust loads whole; anything else loads as data
    only, admitting nothing beyond ckpt's reviewed table but what --trust
    names. --verify exits 1 if any check fails. FILE may be a URL
    (s3://bucket/key.ckpt): it is downloaded once, into a temporary file,
    and checked as a file.

    Exit 0 loaded (and verified), 1 refused or a check failed, 2 bad input.
    """
    config = configuration()
    trusted = _trust(trust, config)
    keys = _keys(trusted_key, config)
    options = _storage_options(file, storage_option, config)
    ckpt.importable_cwd()
    with contextlib.ExitStack() as opening:  # one download of a URL serves the load and the verify
        with progress_bar(no_progress) as progress:
            archive = opening.enter_context(ckpt.opened(file, options, progress, mmap=use_mmap))
            report = ckpt.load_checkpoint(archive, trust=trusted, trusted_keys=keys, mmap=use_mmap, strict=strict,
                                     progress=progress)
        checks = None
        if verify or against:
            fresh = ckpt.resolve(against) if against else None
            checks = ckpt.verify(archive, trust=trusted, trusted_keys=keys, against=fresh, strict=strict,
                                       loaded=report)
    render(fmt, lambda out: text_view.load_text(out, report, checks, every), lambda: json_view.load_json(report, checks))
    ctx.exit(checks.exit_code if checks else 0)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_TRUSTED_KEY
@_TRUST
@_STORAGE_OPTION
@_ALL
@common()
@click.pass_context
def inspect(ctx: click.Context, file: str, trusted_key: tuple[str, ...], trust: tuple[str, ...],
            storage_option: tuple[str, ...], every: bool, fmt: str) -> None:
    """Show what FILE holds without running anything in it.

    Who signed it (and so whether it would load whole or as data only), the
    manifest, members, substitutions, and every global the pickle would ask
    for (read from its opcodes: nothing from the file is built, called or
    imported), each with how the file uses it and what the data-only loader
    would do about it under the trust given.

    Exit 0 intact, 1 damaged or asking for what ckpt never loads, 2 unreadable.
    """
    config = configuration()
    ckpt.importable_cwd()  # a package --trust names is looked for here too (never imported)
    result = ckpt.inspect(file, trust=_trust(trust, config), trusted_keys=_keys(trusted_key, config),
                                storage_options=_storage_options(file, storage_option, config))
    render(fmt, lambda out: text_view.inspect_text(out, result, every), lambda: json_view.inspect_json(result))
    ctx.exit(result.exit_code)


@cli.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--against", metavar="TARGET", help="Also compare each loaded object with a fresh one from TARGET.")
@click.option("--strict", is_flag=True, help="Fail when an installed module's version differs from the one saved.")
@_TRUSTED_KEY
@_TRUST
@_STORAGE_OPTION
@common()
@click.pass_context
def verify_command(ctx: click.Context, files: tuple[str, ...], against: str | None, strict: bool,
                   trusted_key: tuple[str, ...], trust: tuple[str, ...], storage_option: tuple[str, ...],
                   fmt: str) -> None:
    """Run every check on each checkpoint FILE, keeping no model.

    Each file in turn: its members against their sha256 in the manifest;
    who signed it (it passes if signed by your key, a key you trust, or a
    --trusted-key); the load (whole, or as data only under --trust); each
    restored primitive exercised across threads; stripped objects restored
    as None; the substitutions against what came back; module versions
    (--strict fails on a difference); and with --against, a structural
    comparison with a fresh object from TARGET. The loaded object is dropped
    before the next file. FILE may be a URL (downloaded once).

    Exit 0 every file passed, 1 a check failed, 2 bad input (a missing file,
    a target that does not resolve, a --trust naming nothing installed).
    """
    config = configuration()
    trusted, keys = _trust(trust, config), _keys(trusted_key, config)
    options = {file: _storage_options(file, storage_option, config) for file in files}
    for file in files:
        if not ckpt.is_url(file) and not Path(file).is_file():
            raise ckpt.MissingFileError(f"no such checkpoint: {file!r}", file)
    ckpt.importable_cwd()
    fresh = ckpt.resolve(against) if against else None
    reports = [ckpt.verify(file, trust=trusted, trusted_keys=keys, against=fresh, strict=strict,
                                 storage_options=options[file]) for file in files]
    render(fmt, lambda out: text_view.verify_text(out, reports), lambda: json_view.verify_json(reports))
    ctx.exit(max(r.exit_code for r in reports))


@cli.command("diff")
@click.argument("a", metavar="A", type=click.Path(dir_okay=False))
@click.argument("b", metavar="B", type=click.Path(dir_okay=False))
@common()
@click.pass_context
def diff_command(ctx: click.Context, a: str, b: str, fmt: str) -> None:
    """Compare two checkpoints without running either.

    The manifests (root type, target, ckpt and Python versions, modules,
    signer), the substitutions, data.pkl (by its sha256), and every array
    or tensor by path: dtype, shape, and whether its values changed, with
    how many elements and the largest absolute difference. Values are read
    from the buffer members with numpy and nothing is unpickled, so files
    from anyone can be compared. Arrays under 64 KiB live inside data.pkl
    and are compared only as part of it.

    Exit 0 same content, 1 different, 2 bad input (a missing or damaged file).
    """
    result = ckpt.diff(a, b)
    render(fmt, lambda out: text_view.diff_text(out, result), lambda: json_view.diff_json(result))
    ctx.exit(result.exit_code)


@cli.command()
@click.argument("files", nargs=-1)
@click.option("--config", "config_path", metavar="PATH",
              help="The pyproject.toml to read [tool.ckpt] from (default: the nearest one from here upward).")
@_TRUSTED_KEY
@common(("text", "json", "sarif"))
@click.pass_context
def check(ctx: click.Context, files: tuple[str, ...], config_path: str | None, trusted_key: tuple[str, ...],
          fmt: str) -> None:
    """Check what [tool.ckpt] in pyproject.toml asks for: for CI and pre-commit.

    Scans every configured target (it passes if `ckpt save` can write it:
    under fail-on = "error" every finding is rewrapped, stripped, or listed
    in `strip`; under "any" every finding fails) and verifies every
    configured checkpoint: intact, signed by a key you or [tool.ckpt]
    `trusted-keys` trust (public keys only: nothing secret in CI), and
    loading with its restored objects working. Targets resolve from the configuration file's
    directory. Given FILES, verifies the .ckpt files among them and scans
    only the targets whose module file is among them.

    Exit 0 all passed, 1 something failed, 2 configuration or usage error.
    """
    report = ckpt.check(ckpt.read_config(Path(config_path) if config_path else None, strict=True), files,
                        trusted_key)
    render(fmt, lambda out: text_view.check_report_text(out, report), lambda: json_view.check_report_json(report),
           lambda: sarif.check_log(report))
    ctx.exit(report.exit_code)


@cli.group()
def key() -> None:
    """Your signing key, and the public keys you trust.

    Every `ckpt save` signs its file with your own key (made on the first
    save, private, under $CKPT_HOME or ~/.config/ckpt; CKPT_SIGNING_KEY
    supplies one instead, for CI and clusters). A file signed by your key,
    or by a key you trust, loads whole; any other file loads as data only.
    Share your public key (`ckpt key export`) with whoever should load your
    files whole; they run `ckpt key trust` on it.
    """


@key.command("export")
def key_export() -> None:
    """Print your public key (one OpenSSH line; nothing secret).

    Made now if you have none yet. Give it to teammates (`ckpt key trust
    FILE`) or list it in `trusted-keys` of [tool.ckpt], so CI verifies your
    checkpoints with no secret.
    """
    existing = ckpt.keys.own_key()
    signing = existing or ckpt.keys.signing_key()
    if existing is None and not _state["quiet"]:
        click.echo(f"ckpt: made your signing key in {ckpt.keys.home()}", err=True)
    click.echo(signing.public.text())  # type: ignore[union-attr]


@key.command("trust")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", metavar="NAME", help="What to call the key in reports (default: its own comment, e.g. alice@laptop).")
def key_trust(file: str, name: str | None) -> None:
    """Trust files signed by the public key in FILE: they load whole from now on.

    FILE is a public key as `ckpt key export` prints it (ssh-ed25519 AAAA...
    name). It is kept under your ckpt home; `ckpt key untrust` removes it.
    """
    public, where = ckpt.keys.trust(file, name)
    if not _state["quiet"]:
        click.echo(f"ckpt: trusting {public.describe()}: files it signs load whole (kept in {where})")


@key.command("untrust")
@click.argument("which", metavar="FINGERPRINT_OR_NAME")
def key_untrust(which: str) -> None:
    """Stop trusting a key `ckpt key trust` added (by its fingerprint or name)."""
    for public in ckpt.keys.untrust(which):
        if not _state["quiet"]:
            click.echo(f"ckpt: no longer trusting {public.describe()}")


@key.command("list")
@common()
def key_list(fmt: str) -> None:
    """Show your own key and every key you trust."""
    own = ckpt.keys.own_key()
    stored = ckpt.keys.trusted_keys()
    rows = ([("own", own.public.describe(), own.source)] if own else []) + [
        ("trusted", public.describe(), where) for public, where in stored.others]
    render(fmt, lambda out: text_view.keys_text(out, rows, ckpt.keys.home()), lambda: json_view.keys_json(rows, ckpt.keys.home()))


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-y", "--yes", is_flag=True, help="Do not ask: sign (for scripts).")
@click.pass_context
def sign(ctx: click.Context, file: str, yes: bool) -> None:
    """Vouch for FILE: sign it with your own key, so it loads whole.

    For a checkpoint written before ckpt signed files, or by someone whose
    key you do not hold, once `ckpt inspect FILE` has shown you what it
    names: loading it whole runs what it names, as plain pickle would. The
    file is rewritten atomically with the same members and a manifest
    signed by you. Refused for a damaged file.

    Exit 0 signed, 1 refused or declined, 2 bad input.
    """
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("signing runs nothing, but loads FILE whole from then on: confirm with --yes "
                                   "(no terminal to ask on)")
        if not click.confirm(f"Loading {file} whole runs whatever it names (see `ckpt inspect {file}`). Sign it "
                             "with your key?", default=False):
            ctx.exit(1)
    done = ckpt.sign(file)
    if not _state["quiet"]:
        click.echo(f"ckpt sign: {file} was {done.before.describe()}; now signed by you "
                   f"({ckpt.keys.fingerprint(done.manifest.signature.public_key)}): it loads whole")  # type: ignore[union-attr]
