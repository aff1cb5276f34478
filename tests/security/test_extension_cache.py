"""The C unpickler answers an EXT opcode from copyreg's extension cache
before asking find_class. An object cached by an earlier, ordinary
`pickle.loads` in the same process must not slip past ckpt's policy."""

from __future__ import annotations

import copyreg
import pickle
from collections.abc import Iterator

import pytest

import ckpt

CODE = 0x7FF0


@pytest.fixture
def registered() -> Iterator[bytes]:
    copyreg.add_extension("os", "getcwd", CODE)
    data = b"\x80\x05\x84" + CODE.to_bytes(4, "little") + b"."  # EXT4 CODE, STOP
    try:
        yield data
    finally:
        copyreg.remove_extension("os", "getcwd", CODE)
        copyreg.clear_extension_cache()


def test_a_cached_extension_still_goes_through_the_policy(registered: bytes) -> None:
    import os

    assert pickle.loads(registered) is os.getcwd  # now in copyreg's extension cache
    with pytest.raises(ckpt.UnsafeCheckpointError, match="extension code"):
        ckpt.loads(registered)


def test_the_analysis_refuses_extension_codes_without_resolving_them(registered: bytes) -> None:
    import os

    from ckpt.trust.analysis import analyse

    facts = analyse(registered)
    assert facts.globals == {} and any("extension code" in p for p in facts.problems)
    assert pickle.loads(registered) is os.getcwd  # the analysis left copyreg's cache as it was
