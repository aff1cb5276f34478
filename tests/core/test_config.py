"""`[tool.ckpt]`: a valid table gives a Config; every invalid one is a
ConfigError naming the key and the file, never a half-read configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckpt import config
from ckpt.errors import ConfigError

VALID = """
[project]
name = "mypkg"

[tool.ckpt]
targets = ["mypkg.model:build", "mypkg.service:make_service"]
checkpoints = ["models/*.ckpt", "extra/one.ckpt"]
trust = ["mypkg"]
strip = ["mypkg.service:make_service=model.log_file", "mypkg.service:make_service = model.sock"]
fail-on = "any"
"""


def write(directory: Path, text: str) -> Path:
    path = directory / "pyproject.toml"
    path.write_text(text)
    return path


def test_valid_configuration_is_read_completely(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    cfg = config.load(path)
    assert cfg.path == path and cfg.root == tmp_path
    assert cfg.targets == ("mypkg.model:build", "mypkg.service:make_service")
    assert cfg.checkpoints == ("models/*.ckpt", "extra/one.ckpt")
    assert cfg.trust == ("mypkg",)
    assert cfg.strip == {"mypkg.service:make_service": ("model.log_file", "model.sock")}
    assert cfg.fail_on == "any"


def test_defaults_when_keys_are_absent(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, "[tool.ckpt]\n"))
    assert (cfg.targets, cfg.checkpoints, cfg.trust, cfg.strip, cfg.fail_on) == ((), (), (), {}, "error")


def test_nearest_pyproject_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    deep = tmp_path / "src" / "mypkg"
    deep.mkdir(parents=True)
    assert config.load(start=deep).path == path


def test_no_pyproject_anywhere_gives_an_empty_configuration(tmp_path: Path) -> None:
    # tmp_path's ancestors (/tmp, /) hold no pyproject.toml on a sane machine.
    assert config.find(tmp_path) is None
    assert config.load(start=tmp_path).path is None


def test_checkpoint_patterns_match_relative_to_the_files_directory(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path, VALID)
    (tmp_path / "models").mkdir()
    for name in ("b.ckpt", "a.ckpt", "notes.txt"):
        (tmp_path / "models" / name).write_bytes(b"x")
    monkeypatch.chdir(tmp_path / "models")  # the current directory does not matter
    matches = config.load(path).checkpoint_matches()
    assert matches == {
        "models/*.ckpt": [tmp_path / "models" / "a.ckpt", tmp_path / "models" / "b.ckpt"],
        "extra/one.ckpt": [],
    }


def test_an_unknown_key_is_an_error_when_strict_and_a_warning_otherwise(tmp_path: Path) -> None:
    path = write(tmp_path, '[tool.ckpt]\ntargets = ["a:b"]\ntarget = ["a:b"]\nzzz = 1\n')
    with pytest.raises(ConfigError, match=r"unknown key 'target' in \[tool.ckpt\]; did you mean 'targets'\?"):
        config.load(path, strict=True)
    loaded = config.load(path)
    assert loaded.targets == ("a:b",) and loaded.unknown == ("target", "zzz")
    assert loaded.warnings == (f"{path}: unknown key 'target' in [tool.ckpt]; did you mean 'targets'? (ignored)",
                               f"{path}: unknown key 'zzz' in [tool.ckpt]; known keys: checkpoints, fail-on, "
                               "storage-options, strip, targets, trust, trusted-keys (ignored)")


def test_storage_options_are_a_table_per_url_scheme(tmp_path: Path) -> None:
    path = write(tmp_path, '[tool.ckpt.storage-options.S3]\nendpoint_url = "http://127.0.0.1:9000"\nanon = true\n')
    assert config.load(path, strict=True).storage_options == {"s3": {"endpoint_url": "http://127.0.0.1:9000",
                                                                     "anon": True}}
    flat = write(tmp_path, '[tool.ckpt.storage-options]\nendpoint_url = "http://127.0.0.1:9000"\n')
    with pytest.raises(ConfigError, match=r"storage-options must be a table of tables, one per URL scheme"):
        config.load(flat)


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        ('targets = "mypkg.model:build"', ["targets must be a list of non-empty strings"]),
        ("targets = [1]", ["targets must be a list of non-empty strings"]),
        ('targets = [""]', ["targets must be a list of non-empty strings"]),
        ('checkpoints = "models/*.ckpt"', ["checkpoints must be a list"]),
        ('checkpoints = ["/abs/models/*.ckpt"]', ["checkpoints pattern '/abs/models/*.ckpt' must be relative"]),
        ("trust = [true]", ["trust must be a list"]),
        ('strip = "a:b=model.x"', ["strip must be a list"]),
        ('strip = ["model.log_file"]', ["strip entry 'model.log_file' must be \"TARGET=PATH\""]),
        ('strip = ["a:b=log_file"]', ["strip entry 'a:b=log_file'"]),
        ('strip = ["=model.x"]', ["strip entry '=model.x'"]),
        ('fail-on = "warning"', ["fail-on must be \"error\" or \"any\", not 'warning'"]),
        ("fail-on = 1", ["fail-on must be"]),
    ],
)
def test_invalid_configuration_names_the_key_and_the_file(tmp_path: Path, table: str, fragments: list[str]) -> None:
    path = write(tmp_path, f"[tool.ckpt]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_tool_ckpt_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[tool]\nckpt = "yes"\n')
    with pytest.raises(ConfigError, match=r"\[tool.ckpt\] must be a table"):
        config.load(path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[tool.ckpt\ntargets = [")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        config.load(path)
    assert str(path) in str(caught.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(tmp_path / "absent.toml")
