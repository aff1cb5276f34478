"""The clients and workers of tests/restored: what each case builds, and how
what comes back from a checkpoint is exercised.

Importable as `restored_clients` by the fresh processes that load the
checkpoints too (PYTHONPATH). The servers run in the test process, on
127.0.0.1: an HTTP server answering openai's and anthropic's endpoints with
canned JSON, and a stub speaking enough of redis's RESP for PING, SET and
GET. Nothing here reaches the network. Each case's library is imported
only by its own build and exercise.
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

REPLY = "hello from the loopback server"


class Service:
    """A model holding clients: each case's object, as an attribute. (No lock
    of its own: cloudpickle refuses any lock, and would then be compared on
    that alone.)"""

    def __init__(self, **parts: Any) -> None:
        for name, value in parts.items():
            setattr(self, name, value)


# --- the servers ---------------------------------------------------------------


class ChatHandler(http.server.BaseHTTPRequestHandler):
    """openai's chat completions, anthropic's messages, and GET /ping: canned JSON,
    over HTTP/1.1 keep-alive (so a client pools its connection)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._reply({"pong": True, "path": self.path})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/chat/completions"):
            self._reply({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "test-model",
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": REPLY}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        elif self.path.endswith("/messages"):
            self._reply({"id": "msg_1", "type": "message", "role": "assistant", "model": "test-model",
                         "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn",
                         "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}})
        else:
            self.send_error(404)

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reads results, not logs
        pass


class RespHandler(socketserver.StreamRequestHandler):
    """A RESP3 stub: HELLO, PING, SET and GET against the server's `store`;
    anything else (CLIENT SETINFO ...) answered OK."""

    def handle(self) -> None:
        while command := self._command():
            self.wfile.write(self._answer(command[0].upper(), command[1:]))

    def _command(self) -> list[bytes]:
        header = self.rfile.readline()
        if not header.startswith(b"*"):
            return []
        args = []
        for _ in range(int(header[1:])):
            size = int(self.rfile.readline()[1:])
            args.append(self.rfile.read(size + 2)[:-2])
        return args

    def _answer(self, name: bytes, args: list[bytes]) -> bytes:
        store: dict[bytes, bytes] = self.server.store  # type: ignore[attr-defined]
        if name == b"HELLO":
            return b"%3\r\n+server\r\n+redis\r\n+version\r\n+7.2.0\r\n+proto\r\n:3\r\n"
        if name == b"PING":
            return b"+PONG\r\n"
        if name == b"SET":
            store[args[0]] = args[1]
            return b"+OK\r\n"
        if name == b"GET":
            value = store.get(args[0])
            return b"_\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)
        return b"+OK\r\n"


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[int]:
    """`server` answering on a daemon thread; its port."""
    thread = threading.Thread(target=server.serve_forever, name="restored-server", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()


def http_server() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ChatHandler)
    server.daemon_threads = True
    return server


def resp_server() -> socketserver.ThreadingTCPServer:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RespHandler)
    server.daemon_threads = True
    server.store = {}  # type: ignore[attr-defined]
    return server


# --- the cases -------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    """Where the servers answer and where files go: handed to the fresh process as JSON."""

    http: str
    redis_port: int
    folder: str


@dataclass(frozen=True)
class Case:
    library: str
    build: Callable[[Env], Any]
    exercise: Callable[[Any, Env], None]
    strip: tuple[str, ...] = ()
    release: Callable[[Any], None] = lambda model: None
    """Frees what the built model holds in the building process, once it is saved."""


def _chat(client: Any) -> str:
    reply = client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "hi"}])
    return str(reply.choices[0].message.content)


def _message(client: Any) -> str:
    reply = client.messages.create(model="test-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    return str(reply.content[0].text)


def _pooled(client: Any) -> int:
    """How many connections an httpx-style client keeps open (one after a keep-alive request)."""
    return len(client._transport._pool._connections)


def build_openai(env: Env) -> Any:
    import openai

    client = openai.OpenAI(base_url=f"{env.http}/v1", api_key="test-key", max_retries=0)
    assert _chat(client) == REPLY and _pooled(client._client) == 1
    return Service(llm=client)


def exercise_openai(model: Any, env: Env) -> None:
    assert _chat(model.llm) == REPLY


def build_anthropic(env: Env) -> Any:
    import anthropic

    client = anthropic.Anthropic(base_url=env.http, api_key="test-key", max_retries=0)
    assert _message(client) == REPLY and _pooled(client._client) == 1
    return Service(llm=client)


def exercise_anthropic(model: Any, env: Env) -> None:
    assert _message(model.llm) == REPLY


def build_httpx(env: Env) -> Any:
    import httpx

    client = httpx.Client(base_url=env.http)
    assert client.get("/ping").json()["pong"] and _pooled(client) == 1
    return Service(http=client)


def exercise_httpx(model: Any, env: Env) -> None:
    assert model.http.get("/again").json() == {"pong": True, "path": "/again"}


def build_httpx_async(env: Env) -> Any:
    import asyncio

    import httpx

    client = httpx.AsyncClient(base_url=env.http)
    assert asyncio.run(client.get("/ping")).json()["pong"] and _pooled(client) == 1  # a transport of a closed loop
    return Service(http=client)


def exercise_httpx_async(model: Any, env: Env) -> None:
    import asyncio

    async def request() -> Any:
        return (await model.http.get("/again")).json()

    assert asyncio.run(request()) == {"pong": True, "path": "/again"}


def build_requests(env: Env) -> Any:
    import requests

    session = requests.Session()
    assert session.get(f"{env.http}/ping").json()["pong"]
    return Service(http=session)


def exercise_requests(model: Any, env: Env) -> None:
    assert model.http.get(f"{env.http}/again").json()["path"] == "/again"


def build_urllib3(env: Env) -> Any:
    import urllib3

    manager = urllib3.PoolManager(maxsize=2)
    assert json.loads(manager.request("GET", f"{env.http}/ping").data)["pong"]
    return Service(http=manager)


def exercise_urllib3(model: Any, env: Env) -> None:
    assert json.loads(model.http.request("GET", f"{env.http}/again").data)["path"] == "/again"


def build_redis_pools(env: Env) -> Any:
    """Two pools (the plain one and the blocking one), each with a connection
    made by a client; the clients themselves are not saved."""
    import redis

    pool = redis.ConnectionPool(host="127.0.0.1", port=env.redis_port)
    blocking = redis.BlockingConnectionPool(host="127.0.0.1", port=env.redis_port, max_connections=4)
    redis.Redis(connection_pool=pool).set("model", "v1")
    assert redis.Redis(connection_pool=blocking).ping()
    return Service(cache=pool, blocking=blocking)


def exercise_redis_pools(model: Any, env: Env) -> None:
    import redis

    assert redis.Redis(connection_pool=model.cache).get("model") == b"v1"
    assert redis.Redis(connection_pool=model.blocking).ping()


def build_redis(env: Env) -> Any:
    import redis

    client = redis.Redis(host="127.0.0.1", port=env.redis_port)
    client.set("client", "v2")
    return Service(cache=client)


def exercise_redis(model: Any, env: Env) -> None:
    assert model.cache.get("client") == b"v2" and model.cache.ping()


def build_duckdb(env: Env) -> Any:
    import duckdb

    connection = duckdb.connect(os.path.join(env.folder, "features.duckdb"))
    connection.execute("create or replace table features as select 42 as answer")
    return Service(db=connection)


def exercise_duckdb(model: Any, env: Env) -> None:
    assert model.db.execute("select answer from features").fetchone() == (42,)


def _log_path(env: Env) -> str:
    return os.path.join(env.folder, "service.log")


def build_loguru(env: Env) -> Any:
    """A logger of its own, made as loguru makes its global one (with no
    handler yet), writing to a file through a queue and a worker thread."""
    from loguru._logger import Core, Logger

    own = Logger(core=Core(), exception=None, depth=0, record=False, lazy=False, colors=False, raw=False,
                 capture=True, patchers=[], extra={})
    own.add(_log_path(env), enqueue=True, format="{message}")
    own.info("before save")
    own.complete()
    return Service(log=own)


def exercise_loguru(model: Any, env: Env) -> None:
    model.log.info("after load")
    model.log.complete()  # waits for the worker: hangs if nothing takes from the queue
    with open(_log_path(env), encoding="utf-8") as log:
        assert log.read().splitlines()[-2:] == ["before save", "after load"]


def _listened_path(env: Env) -> str:
    return os.path.join(env.folder, "listened.log")


def build_queue_listener(env: Env) -> Any:
    """The standard library's own worker-backed queue: a QueueHandler feeding
    a started QueueListener, which writes to a file."""
    import logging.handlers
    import queue

    records: queue.Queue[logging.LogRecord] = queue.Queue()
    to_file = logging.FileHandler(_listened_path(env), encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(message)s"))
    listener = logging.handlers.QueueListener(records, to_file)
    listener.start()
    handler = logging.handlers.QueueHandler(records)
    handler.handle(logging.makeLogRecord({"msg": "before save"}))
    return Service(handler=handler, listener=listener)


def exercise_queue_listener(model: Any, env: Env) -> None:
    import logging

    model.handler.handle(logging.makeLogRecord({"msg": "after load"}))
    model.listener.stop()  # handles what is queued first: nothing if the listener has no thread
    with open(_listened_path(env), encoding="utf-8") as log:
        assert log.read().splitlines()[-1:] == ["after load"]


def _stop_listener(model: Any) -> None:
    model.listener.stop()
    model.listener.handlers[0].close()


def initialise_worker(tag: str) -> None:
    """A process pool's initializer: what each worker was told."""
    os.environ["RESTORED_WORKER_TAG"] = tag


def worker_tag(n: int) -> tuple[str, int]:
    return os.environ.get("RESTORED_WORKER_TAG", ""), n * n


def build_process_pool(env: Env) -> Any:
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(2, initializer=initialise_worker, initargs=("initialised",))
    assert pool.submit(worker_tag, 3).result(60) == ("initialised", 9)  # its workers alive at save
    return Service(workers=pool)


def exercise_process_pool(model: Any, env: Env) -> None:
    try:
        assert model.workers._max_workers == 2
        assert list(model.workers.map(worker_tag, [4, 5], timeout=60)) == [("initialised", 16), ("initialised", 25)]
    finally:
        model.workers.shutdown()


def _files(env: Env) -> tuple[str, str]:
    text, data = os.path.join(env.folder, "lines.txt"), os.path.join(env.folder, "blob.bin")
    return text, data


def build_read_files(env: Env) -> Any:
    text, data = _files(env)
    with open(text, "w", encoding="utf-8") as out:
        out.write("first\nsecond\nthird\n")
    with open(data, "wb") as out:
        out.write(bytes(range(16)))
    lines = open(text, encoding="utf-8")  # noqa: SIM115 - the model holds it open
    lines.readline()
    blob = open(data, "rb")  # noqa: SIM115
    blob.read(4)
    return Service(lines=lines, blob=blob)


def exercise_read_files(model: Any, env: Env) -> None:
    assert model.lines.readline() == "second\n" and list(model.lines) == ["third\n"]
    assert model.blob.read(2) == bytes([4, 5])


def build_temp_file(env: Env) -> Any:
    scratch = tempfile.NamedTemporaryFile("w+", dir=env.folder)  # noqa: SIM115 - the model holds it open
    scratch.write("scratch")
    scratch.flush()
    return Service(scratch=scratch, name="kept")


def exercise_temp_file(model: Any, env: Env) -> None:
    assert model.scratch is None and model.name == "kept"


CASES: dict[str, Case] = {
    "openai": Case("openai", build_openai, exercise_openai),
    "anthropic": Case("anthropic", build_anthropic, exercise_anthropic),
    "httpx": Case("httpx", build_httpx, exercise_httpx),
    "httpx-async": Case("httpx", build_httpx_async, exercise_httpx_async),
    "requests": Case("requests", build_requests, exercise_requests),
    "urllib3": Case("urllib3", build_urllib3, exercise_urllib3),
    "redis-pools": Case("redis", build_redis_pools, exercise_redis_pools),
    "redis": Case("redis", build_redis, exercise_redis),
    "duckdb": Case("duckdb", build_duckdb, exercise_duckdb, release=lambda model: model.db.close()),
    "loguru": Case("loguru", build_loguru, exercise_loguru, release=lambda model: model.log.remove()),
    "queue-listener": Case("logging", build_queue_listener, exercise_queue_listener, release=_stop_listener),
    "process-pool": Case("concurrent.futures", build_process_pool, exercise_process_pool,
                         release=lambda model: model.workers.shutdown()),
    "read-files": Case("io", build_read_files, exercise_read_files,
                       release=lambda model: (model.lines.close(), model.blob.close())),
    "temp-file": Case("tempfile", build_temp_file, exercise_temp_file, strip=("model.scratch",),
                      release=lambda model: model.scratch.close()),
}
