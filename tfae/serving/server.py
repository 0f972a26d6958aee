"""Running the server: REST under uvicorn and gRPC beside it, in one or several processes.

Each worker process holds the model once and answers both protocols from one event loop: uvicorn
runs the REST application and, through its lifespan, starts the gRPC server and stops it. With
``workers`` > 1, uvicorn's supervisor starts the workers on one shared REST socket, restarts one
that dies and stops them all on SIGINT or SIGTERM; every worker binds the gRPC port with
``SO_REUSEPORT``, so the kernel shares gRPC connections among them too. On SIGTERM each worker
stops accepting, lets the requests in flight finish (up to ``GRACE_SECONDS`` for REST, then as
long for gRPC), answers those still running 503 and exits 0.

Examples:
    From Python, in a background thread (for notebooks and tests):

    >>> with Server(ServerSettings("saved_models/deep", "deep", port=0, grpc_port=0)) as server:  # doctest: +SKIP
    ...     requests.post(server.rest_url + ":predict", json={"instances": images.tolist()})

    Blocking until SIGINT or SIGTERM, as ``tfae serve`` does:

    >>> serve(ServerSettings("saved_models/deep", "deep", workers=2))  # doctest: +SKIP
"""

import contextlib
import dataclasses
import http
import json
import os
import signal
import socket
import sys
import threading
import time

import uvicorn
from uvicorn.supervisors import Multiprocess

from tfae.compat import private_name, require
from tfae.errors import TfaeError
from tfae.serving import grpc_api, rest
from tfae.serving.servables import Limits, Repository, ServingError, calls_running
from tfae.serving.page import shown_by_default
from tfae.startup import start_tensorflow

GRACE_SECONDS = 2  # for REST's requests in flight at SIGTERM, then gRPC's: it exits within 5 s
MAX_MESSAGE_BYTES = 2**31 - 1  # gRPC's message sizes are 32-bit signed
REQUEST_SECONDS = 10  # to send a request's headers, and its body at 1 MB/s or faster on top
START_SECONDS = 300  # a worker imports TensorFlow and loads the model
# A request's headers, all of them: TF Serving's clients send a few hundred bytes.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
_SETTINGS_VARIABLE = "TFAE_SERVING_SETTINGS"  # how the worker processes learn what to serve


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """What to serve and where.

    Attributes:
        export_dir: the export folder (``<version>/saved_model.pb`` inside).
        name: the model's name in requests.
        host: the address both protocols bind.
        port: REST's port (TF Serving's 8501); 0 picks a free one.
        grpc_port: gRPC's port (TF Serving's 8500); 0 picks a free one.
        workers: processes answering, each with the model.
        labels: version labels, ``{"stable": 1}``.
        max_request_bytes: the largest gRPC message taken.
        max_json_bytes: the largest REST body taken. Reading JSON holds the worker's one Python
            thread (about 0.1 s a MB here), so it is smaller: one request of 60 MB would keep
            every other client waiting for seconds; gRPC's binary tensors cost next to nothing.
        access_log: write a line on stderr for every request of either protocol.
        max_answer_bytes, max_image_pixels: what one request may ask
            (``tfae.serving.servables.Limits``).
        page: answer a browser at ``/`` with the page of ``tfae.serving.page``; ``None``: on a
            loopback ``host`` only (``page.shown_by_default``).

    Examples:
        >>> ServerSettings("saved_models/deep", "deep", labels={"stable": 1}).grpc_port
        8500
    """

    export_dir: str
    name: str
    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int = 8500
    workers: int = 1
    labels: dict = dataclasses.field(default_factory=dict)
    max_request_bytes: int = 64 * 1024 * 1024
    max_json_bytes: int = 16 * 1024 * 1024
    access_log: bool = False
    max_answer_bytes: int = Limits.max_answer_bytes
    max_image_pixels: int = Limits.max_image_pixels
    page: bool | None = None

    def __post_init__(self):
        if not self.name or "/" in self.name or ":" in self.name:
            raise TfaeError(f"--name {self.name!r}: a model name in a URL can hold neither '/' "
                            "nor ':' and cannot be empty")
        if not 0 < self.max_request_bytes <= MAX_MESSAGE_BYTES:
            raise TfaeError(f"--max-request-mb must be between 1 and "
                            f"{MAX_MESSAGE_BYTES // 2**20} (gRPC's largest message is 2 GiB)")
        if self.max_json_bytes <= 0:
            raise TfaeError("--max-json-mb must be at least 1")
        if self.max_answer_bytes <= 0 or self.max_image_pixels <= 0:
            raise TfaeError("--max-answer-mb and --max-image-pixels must be at least 1")

    @property
    def shows_page(self):
        """Whether ``/`` answers a browser with the page."""
        return self.page if self.page is not None else shown_by_default(self.host)

    @property
    def limits(self):
        """What one request may ask (``tfae.serving.servables.Limits``)."""
        return Limits(self.max_answer_bytes, self.max_image_pixels)


class _Worker:
    """One worker's ASGI application: the REST application, and gRPC started and stopped around
    it by the ASGI lifespan; a worker that cannot serve says why in one line, not a traceback."""

    def __init__(self, settings, ends_process=False):
        self.settings = settings
        self.ends_process = ends_process
        self.repository = Repository(settings.export_dir, settings.name, settings.labels,
                                     settings.limits)
        self.rest = rest.create_app(self.repository, settings.max_json_bytes,
                                    page=settings.shows_page)
        self.log = access_line if settings.access_log else None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if self.log is None:
            return await self.rest(scope, receive, send)
        start, status = time.perf_counter(), []

        async def sending(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.rest(scope, receive, sending)
        finally:
            client = (scope.get("client") or ("-",))[0]
            self.log(client, "REST", f"{scope['method']} {scope['path']}",
                     status[0] if status else "-", time.perf_counter() - start)

    async def _lifespan(self, receive, send):
        await receive()  # lifespan.startup
        try:
            await self.repository.resolve(self.settings.name)  # load before answering
            grpc_server = await grpc_api.start(
                self.repository, f"{self.settings.host}:{self.settings.grpc_port}",
                self.settings.max_request_bytes, reuse_port=True, log=self.log)
        except (ServingError, RuntimeError) as error:  # grpc's bind failure is a RuntimeError
            await send({"type": "lifespan.startup.failed", "message": f"tfae serve: {error}"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await grpc_server.stop(GRACE_SECONDS)
        await send({"type": "lifespan.shutdown.complete"})
        if self.ends_process and calls_running():
            # A model call cannot be stopped, and its caller has had its 503: waiting for the
            # call (Python joins its thread at exit) would break the promise to exit within 5 s.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)


def access_line(client, protocol, request, status, seconds):
    """Writes one request's line of the access log on stderr.

    Examples:
        >>> access_line("127.0.0.1", "REST", "POST /v1/models/deep:predict", 200, 0.0013)  # doctest: +SKIP
        tfae serve: 2026-12-01 10:15:02 127.0.0.1 REST "POST /v1/models/deep:predict" 200 1.3 ms
    """
    print(f"tfae serve: {time.strftime('%Y-%m-%d %H:%M:%S')} {client} {protocol} \"{request}\" "
          f"{status} {seconds * 1000:.1f} ms", file=sys.stderr, flush=True)


def create_app(settings, ends_process=False):
    """One worker's ASGI application: REST, with gRPC started and stopped by its lifespan.
    ``ends_process``: the application owns its process (``tfae serve``'s), which it ends at
    shutdown without waiting for model calls still running.

    Examples:
        >>> app = create_app(ServerSettings("saved_models/deep", "deep"))  # doctest: +SKIP
        >>> uvicorn.Server(uvicorn.Config(app, lifespan="on")).run()  # doctest: +SKIP
    """
    return _Worker(settings, ends_process)


def app_from_environment():
    """``create_app`` for a worker process, from the settings its supervisor left in the
    environment (uvicorn starts workers from an import string, so they cannot be handed objects).

    Examples:
        >>> uvicorn.Config("tfae.serving.server:app_from_environment", factory=True, workers=2)  # doctest: +SKIP
    """
    settings = json.loads(os.environ[_SETTINGS_VARIABLE])
    start_tensorflow(settings.pop("verbose"))
    return create_app(ServerSettings(**settings), ends_process=True)


# uvicorn's HTTP protocol, extended below (it has no public hook for these limits).
HttpToolsProtocol = private_name("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol",
                                 "uvicorn")
require(HttpToolsProtocol, ("connection_made", "connection_lost", "on_message_begin",
                            "on_header", "on_headers_complete", "on_message_complete",
                            "send_400_response", "timeout_keep_alive_handler"), "uvicorn")


class _Protocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, with what a server facing the open network needs: no Nagle delay;
    a connection that never sends a request is closed after the keep-alive timeout too (uvicorn
    times out only connections idle after a request); a request not received within
    ``REQUEST_SECONDS`` (plus a second per MB of body) is answered 408 and closed, so clients
    trickling bytes cannot hold connections; past ``connection_limit()`` connections a new one
    is answered 503 and closed at once; headers past ``MAX_HEADER_BYTES`` or
    ``MAX_HEADERS`` are answered 431 and closed; malformed HTTP is answered in TF Serving's JSON,
    not plain text."""

    _deadline = None
    _header_bytes = 0
    _headers = 0

    def connection_made(self, transport):
        super().connection_made(transport)
        if len(self.connections) > self.limit_concurrency:
            # Past the limit a connection is closed at once, so that held ones never take the
            # descriptors the model, gRPC and new clients need.
            self._send_json(503, f"Too many connections (over {self.limit_concurrency}); try "
                                 "again")
            transport.close()
            return
        # asyncio turns Nagle's algorithm off only for sockets made with proto IPPROTO_TCP, and
        # socket.create_server's have proto 0: an answer's body, written after its headers, then
        # waits for the client's delayed ACK, 40 ms on Linux.
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                            self.timeout_keep_alive_handler)

    def connection_lost(self, exc):
        self._stop_deadline()
        super().connection_lost(exc)

    def on_message_begin(self):
        super().on_message_begin()
        self._header_bytes = self._headers = 0
        self._stop_deadline()
        self._deadline = self.loop.call_later(REQUEST_SECONDS, self._too_slow)

    def on_header(self, name, value):
        self._header_bytes += len(name) + len(value)
        self._headers += 1
        if self._header_bytes > MAX_HEADER_BYTES or self._headers > MAX_HEADERS:
            if not self.transport.is_closing():
                self._send_json(431, f"Request headers over the limit of {MAX_HEADERS} headers "
                                     f"or {MAX_HEADER_BYTES // 1024} KiB")
                self.transport.close()
            return
        super().on_header(name, value)

    def on_headers_complete(self):
        if self.transport.is_closing():  # refused above: nothing more is read or answered
            return
        super().on_headers_complete()
        length = dict(self.headers).get(b"content-length", b"")
        if length.isdigit() and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = self.loop.call_later(REQUEST_SECONDS + int(length) / 1e6,
                                                  self._too_slow)

    def on_message_complete(self):
        self._stop_deadline()
        super().on_message_complete()

    def _stop_deadline(self):
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self):
        self._deadline = None
        if self.cycle is None or not self.cycle.response_started:
            self._send_json(408, f"Request not received within {REQUEST_SECONDS} s")
        self.transport.close()

    def send_400_response(self, msg):
        self._send_json(400, f"Malformed request: {msg}")
        self.transport.close()

    def _send_json(self, status, message):
        body = json.dumps({"error": message}).encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (
                                 status, http.HTTPStatus(status).phrase.encode(), len(body),
                                 body))


def _config(app, **options):
    """uvicorn's settings for tfae: its HTTP protocol, the lifespan required (a worker whose
    model or gRPC port fails does not serve), errors only in the log, TF Serving-like timeouts."""
    return uvicorn.Config(app, http=_Protocol, lifespan="on", log_level="error",
                          access_log=False, timeout_keep_alive=5,
                          timeout_graceful_shutdown=GRACE_SECONDS,
                          timeout_worker_healthcheck=START_SECONDS,
                          limit_concurrency=connection_limit(), **options)


def connection_limit():
    """How many REST connections a worker holds at once (and requests in flight): beyond it a
    new one is answered 503 at once. Below the process's file descriptors, with room for the
    model's files, gRPC and the log, so that no accept() fails for want of one.

    Examples:
        >>> 0 < connection_limit() <= 4096
        True
    """
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(4096, (soft if soft != resource.RLIM_INFINITY else 65536) - 256))


def _bind(settings):
    """The REST socket, bound and listening, and the gRPC port, found free; settings with both.

    The gRPC port is checked by binding it without ``SO_REUSEPORT`` (so a port anyone holds is
    refused here, in one line) and then kept bound with it, unlistening, for the workers to share.
    """
    try:
        rest_socket = socket.create_server((settings.host, settings.port), backlog=2048)
    except OSError as error:
        raise TfaeError(f"cannot bind {settings.host} port {settings.port} for REST: "
                        f"{_reason(error)} (--host and --port choose another)") from None
    try:
        with socket.socket() as probe:
            probe.bind((settings.host, settings.grpc_port))
            grpc_port = probe.getsockname()[1]
        grpc_reservation = socket.socket()
        grpc_reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        grpc_reservation.bind((settings.host, grpc_port))
    except OSError as error:
        rest_socket.close()
        raise TfaeError(f"cannot bind {settings.host} port {settings.grpc_port} for gRPC: "
                        f"{_reason(error)} (--grpc-port chooses another)") from None
    settings = dataclasses.replace(settings, port=rest_socket.getsockname()[1],
                                   grpc_port=grpc_port)
    return rest_socket, grpc_reservation, settings


def _reason(error):
    """Why a bind failed, without the address ``socket.create_server`` adds to it."""
    return (error.strerror or str(error)).split(" (while attempting to bind")[0]


class Server:
    """The server in a background thread of this process, until the ``with`` block ends.

    Attributes (once entered):
        rest_url: ``http://host:port/v1/models/NAME``.
        grpc_target: ``host:port`` for ``grpc.insecure_channel``.
        settings: the settings, with the ports actually bound.

    Examples:
        >>> with Server(ServerSettings("saved_models/deep", "deep", port=0, grpc_port=0)) as server:  # doctest: +SKIP
        ...     grpc.insecure_channel(server.grpc_target)
    """

    def __init__(self, settings):
        if settings.workers != 1:
            raise TfaeError("a Server in a thread has one worker; use serve() for more")
        self._rest_socket, self._reservation, self.settings = _bind(settings)
        self._server = uvicorn.Server(_config(create_app(self.settings)))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._rest_socket]}, daemon=True)
        self.rest_url = f"http://{_address(self.settings)}:{self.settings.port}" \
                        f"/v1/models/{self.settings.name}"
        self.grpc_target = f"{_address(self.settings)}:{self.settings.grpc_port}"

    def __enter__(self):
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                self._close()
                raise TfaeError("the server did not start; see the error above")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info):
        self._server.should_exit = True
        self._thread.join()
        self._close()

    def _close(self):
        self._rest_socket.close()
        self._reservation.close()


def serve(settings, announce=print, verbose=False):
    """Serves until SIGINT or SIGTERM, then drains and stops; ``announce`` gets the line saying
    where, once both protocols answer; ``verbose`` shows TensorFlow's start-up lines in workers.
    The process is ``tfae serve``'s: one model call still running when the grace periods are
    over ends it (exit status 0) rather than being waited for.

    Examples:
        >>> serve(ServerSettings("saved_models/deep", "deep"))  # doctest: +SKIP
        serving saved_models/deep as 'deep' on http://127.0.0.1:8501/v1/models/deep (REST) and 127.0.0.1:8500 (gRPC) with 1 worker
    """
    if settings.workers < 1:
        raise TfaeError(f"--workers must be >= 1, not {settings.workers}")
    # A bad folder, or one whose every version is broken, is refused here in one line.
    Repository(settings.export_dir, settings.name, settings.labels).check_complete()
    rest_socket, reservation, settings = _bind(settings)
    started = threading.Thread(target=_announce_when_answering, args=(settings, announce),
                               daemon=True)
    with rest_socket, reservation:
        if settings.workers == 1:
            server = uvicorn.Server(_config(create_app(settings, ends_process=True)))
            started.start()
            with _stopped_quietly(), contextlib.suppress(SystemExit):  # uvicorn's startup failure
                server.run(sockets=[rest_socket])
            if not server.started:
                raise TfaeError("the server did not start; see the error above")
            return
        os.environ[_SETTINGS_VARIABLE] = json.dumps({**dataclasses.asdict(settings),
                                                     "verbose": verbose})
        supervisor = Multiprocess(_config("tfae.serving.server:app_from_environment",
                                          factory=True, workers=settings.workers),
                                  sockets=[rest_socket])
        started.start()
        supervisor.run()
        if any(process.exitcode == 3 for process in supervisor.processes):  # uvicorn's STARTUP_FAILURE
            raise TfaeError("a worker did not start; see the error above")


@contextlib.contextmanager
def _stopped_quietly():
    """uvicorn re-raises the SIGINT or SIGTERM that stopped it once it has stopped; here that
    signal has been handled, and the process should exit 0 rather than die of it."""
    previous = {number: signal.signal(number, lambda *_: None)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _address(settings):
    return "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host


def _announce_when_answering(settings, announce):
    """Calls ``announce`` once a worker accepts on both ports (a worker binds gRPC and starts
    accepting REST only after its model has loaded)."""
    address = _address(settings)
    deadline = time.monotonic() + START_SECONDS
    for port in (settings.grpc_port, settings.port):
        while time.monotonic() < deadline:
            try:
                socket.create_connection((address, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    workers = f"{settings.workers} worker{'s' * (settings.workers > 1)}"
    page = f"; its page: http://{address}:{settings.port}/" if settings.shows_page else ""
    announce(f"serving {settings.export_dir} as {settings.name!r} on http://{address}:"
             f"{settings.port}/v1/models/{settings.name} (REST) and {address}:"
             f"{settings.grpc_port} (gRPC) with {workers}{page}")
