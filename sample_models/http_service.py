"""An HTTP-client-like service: what a real one holds that plain pickle refuses.

`build()` makes a client with an `ssl.SSLContext` (as every httpx.Client
has), a sqlite cache of responses in a file, a weak cache of live sessions
(next to the strong list that owns them), a weak reference to its owner (and one to an object outside the model),
and a progress printer writing to stdout. `ckpt scan
sample_models.http_service:build` names each; `ckpt save` rewraps them all.
"""

from __future__ import annotations

import os
import sqlite3
import ssl
import sys
import tempfile
import weakref
from typing import Any, TextIO


class Session:
    def __init__(self, host: str) -> None:
        self.host = host


ELSEWHERE = Session("elsewhere.example")
"""Held by this module, not by the model."""


class Printer:
    """A print logger: writes progress lines to a stream."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def line(self, text: str) -> None:
        print(text, file=self.out)


class Owner:
    def __init__(self, name: str) -> None:
        self.name = name
        self.client: HttpClient | None = None


class HttpClient:
    def __init__(self, owner: Owner, database: str) -> None:
        self.ssl_context = ssl.create_default_context()
        self.cache = sqlite3.connect(database)
        self.cache.execute("create table if not exists responses (url text primary key, body text)")
        self.cache.execute("insert or replace into responses values ('https://example.com/', 'hello')")
        self.cache.commit()
        self.sessions = [Session("example.com"), Session("example.org")]
        self.live = weakref.WeakValueDictionary({s.host: s for s in self.sessions})
        self.live[ELSEWHERE.host] = ELSEWHERE  # alive, but not in the model: dropped at save
        self.owner = weakref.ref(owner)
        self.last_peer = weakref.ref(ELSEWHERE)  # its referent is not in the model: restored dead
        self.progress = Printer(sys.stdout)

    def cached(self, url: str) -> Any:
        row = self.cache.execute("select body from responses where url = ?", (url,)).fetchone()
        return row[0] if row else None


def build() -> Owner:
    owner = Owner("sample")
    database = os.path.join(tempfile.gettempdir(), "ckpt-sample-http-cache.db")
    owner.client = HttpClient(owner, database)
    return owner
