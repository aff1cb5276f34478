"""Shared fixtures: the installed `ckpt` in a subprocess, and the repository root."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def ckpt_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The suite's own ckpt home (its signing key, its trusted keys): saves
    sign with a key of the test session's, never the user's, and every child
    `ckpt` inherits it. A test that needs another user sets CKPT_HOME itself."""
    home = tmp_path_factory.mktemp("ckpt-home")
    saved = {name: os.environ.get(name) for name in ("CKPT_HOME", "CKPT_SIGNING_KEY")}
    os.environ["CKPT_HOME"] = str(home)
    os.environ.pop("CKPT_SIGNING_KEY", None)
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def sample(kind: str) -> Any:
    """The sample model of a catalog kind (sample_models.kinds), skipped
    where the optional library it needs is not installed."""
    from sample_models import kinds

    if kind in kinds.NEEDS:
        pytest.importorskip(kinds.NEEDS[kind])
    return kinds.FACTORIES[kind]()


class Result:
    """A finished `ckpt` run."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


RunCkpt = Callable[..., Result]


@pytest.fixture(scope="session")
def ckpt_exe() -> str:
    exe = shutil.which("ckpt")
    assert exe, "the ckpt command is not installed: pip install -e '.[test]'"
    return exe


@pytest.fixture
def run_ckpt(ckpt_exe: str) -> RunCkpt:
    """Run the installed `ckpt` (from the repository root unless `cwd` is given)."""

    def run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        proc = subprocess.run(
            [ckpt_exe, *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout
        )
        return Result(proc)

    return run


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """The contract for bad input: the exit code, one line on stderr naming
    the problem, nothing on stdout, and never a traceback."""
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("ckpt: "), result
    assert "Traceback" not in result.err + result.out, result
    for fragment in fragments:
        assert fragment in lines[0], result


def rewrite_member(path: Path, name: str, data: bytes, *, fix_manifest: bool = True) -> None:
    """Replace one member of a checkpoint and (by default) recompute the
    manifest's hash and size for it: a hand-edited file that is internally
    consistent, as an attacker would make it."""
    import hashlib
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    members[name] = data
    manifest = json.loads(members["manifest.json"])
    if fix_manifest and name != "manifest.json":
        manifest["members"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for member, content in members.items():
            if member != "manifest.json":
                archive.writestr(member, content)
        archive.writestr("manifest.json", members["manifest.json"])


def flip_byte(path: Path, member: str = "data.pkl") -> None:
    """Damage a checkpoint as a bad disk or a careless edit would: one byte
    of a member changed, its size and the manifest left as they were."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        data = bytearray(archive.read(member))
    data[len(data) // 2] ^= 0xFF
    rewrite_member(path, member, bytes(data), fix_manifest=False)


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[Path]:
    """Make `directory` unwritable for the block: chmod for users; for root
    (which ignores modes) the immutable attribute, where the filesystem has it."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield directory
        finally:
            directory.chmod(0o700)
        return
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a filesystem without chattr +i: cannot make a directory unwritable")
    try:
        yield directory
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@pytest.fixture
def unwritable_directory(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "ro"
    directory.mkdir()
    with unwritable(directory):
        yield directory


class S3Server:
    """A real S3-compatible server (moto's) on 127.0.0.1, for remote checkpoints.

    `env` is what a child `ckpt` needs to reach it (AWS_ENDPOINT_URL and
    dummy credentials, as a user's environment would hold them); `options`
    is the same as `storage_options=` for the API in this process."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._parts_go = threading.Event()
        self._parts_go.set()
        self.env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                    "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        self.options: dict[str, Any] = {"endpoint_url": endpoint, "key": "testing", "secret": "testing",
                                        "client_kwargs": {"region_name": "us-east-1"}}
        import boto3

        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                                   aws_secret_access_key="testing", region_name="us-east-1")

    def bucket(self, name: str | None = None) -> str:
        """A new, empty bucket (each test its own: the server lives for the session)."""
        import uuid

        name = name or f"ckpt-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def read(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    def keys(self, bucket: str) -> list[str]:
        return [o["Key"] for o in self.client.list_objects_v2(Bucket=bucket).get("Contents", [])]

    @contextlib.contextmanager
    def parts_held(self) -> Iterator[None]:
        """Inside the block, the server stores each multipart upload's first
        part and holds every later one unanswered until the block ends: an
        upload interrupted in there is mid-request at a known moment."""
        self._parts_go.clear()
        try:
            yield
        finally:
            self._parts_go.set()

    def gate(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """The server's WSGI app, behind `parts_held`'s gate."""
        def gated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            part = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("partNumber", ["0"])[0]
            if environ["REQUEST_METHOD"] == "PUT" and part.isdigit() and int(part) > 1:
                self._parts_go.wait(120)
            return app(environ, start_response)

        return gated

    def unfinished_uploads(self, bucket: str) -> list[tuple[str, int]]:
        """Multipart uploads begun and neither completed nor aborted: (key, parts stored)."""
        uploads = self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [(u["Key"], len(self.client.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
                               .get("Parts", []))) for u in uploads]


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's standalone server, as s3fs's own test suite runs it; one per
    test process, started only by the tests that ask for it."""
    server_module = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = S3Server(f"http://{host}:{port}")
    server._server.app = s3.gate(server._server.app)  # werkzeug's server calls its `app` for each request
    try:
        yield s3
    finally:
        server.stop()


# --- pre-commit ----------------------------------------------------------------

GIT = ["git", "-c", "user.name=ckpt tests", "-c", "user.email=tests@ckpt.invalid", "-c", "commit.gpgsign=false"]

PRE_COMMIT = pytest.mark.xdist_group("pre-commit")
"""The tests that run the real pre-commit share one worker, so its hooks'
environment (ckpt installed in a virtualenv, about 15 s) is built once."""


def clean_env() -> dict[str, str]:
    """No GIT_* variables leaking in (tests run from a git hook would carry them)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {"NO_COLOR": "1"}


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's working tree, committed on branch main of a scratch git repository.

    `pre-commit try-repo` on the repository itself would use HEAD plus the
    tracked files' changes, missing new files until they are committed;
    a snapshot of the tracked and untracked (not ignored) files tests the
    code as it is here, which is what the rest of the suite imports."""
    dest = tmp_path_factory.mktemp("hook-repo")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True, env=clean_env()).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*GIT, *command], cwd=dest, check=True, env=clean_env())
    return dest


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit store for the session: the hooks' environment is built
    once (`pre-commit try-repo` would build it again for every run, 11 s each)."""
    return tmp_path_factory.mktemp("pre-commit-home")


def pre_commit_config(repository: Path) -> str:
    """README's `.pre-commit-config.yaml`, exactly as written but for its
    repository URL, which points at `repository` (`hook_repo`)."""
    readme = (REPO / "README.md").read_text()
    found = re.search(r"```yaml\n(# \.pre-commit-config\.yaml.*?)```", readme, re.S)
    assert found, "README has no .pre-commit-config.yaml block"
    config, replaced = re.subn(r"(repo: )\S+", lambda m: f"{m.group(1)}{repository}", found.group(1), count=1)
    assert replaced == 1 and "repo: local" not in config
    return config


def run_pre_commit(project: Path, config: str, store: Path, *, all_files: bool = True,
                   env: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    """Run the real pre-commit in the git repository `project` with `config`
    (on every file, or as a commit would: on the staged changes); return its
    exit code and each ckpt hook's report by name."""
    (project / ".pre-commit-config.yaml").write_text(config)
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True, env=clean_env())
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "run", *(["--all-files"] if all_files else [])],
                          cwd=project, capture_output=True, text=True, timeout=600,
                          env=clean_env() | {"PRE_COMMIT_HOME": str(store)} | (env or {}))
    output = proc.stdout + proc.stderr
    hooks = {}
    for match in re.finditer(r"^(ckpt \w+)\.+(?:\(no files to check\))?(Passed|Failed|Skipped)$(.*?)(?=^ckpt \w+\.+|\Z)",
                             output, re.M | re.S):
        hooks[match.group(1)] = match.group(2) + match.group(3)
    assert set(hooks) == {"ckpt check", "ckpt verify"}, output
    return proc.returncode, hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a test of several seconds, started early (see below)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests pinned to one xdist worker (the real Dask and Ray clusters,
    the real-world corpus, the gadgets: up to 80 s each) go first, so the
    other worker runs the rest meanwhile instead of waiting for them at the
    end; then the slow ones, so that what is left at the end is short and
    both workers finish together."""
    items.sort(key=lambda item: (item.get_closest_marker("xdist_group") is None,
                                 item.get_closest_marker("slow") is None))
