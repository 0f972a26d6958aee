"""Running the server: REST under uvicorn and gRPC beside it, in one or several processes.

Each worker process holds the model once and answers both protocols from one event loop: uvicorn
runs the REST application and, through its lifespan, starts the gRPC server and stops it. With
``workers`` > 1, uvicorn's supervisor starts the workers on one shared REST socket, restarts one
that dies and stops them all on SIGINT or SIGTERM; every worker binds the gRPC port with
``SO_REUSEPORT``, so the kernel shares gRPC connections among them too. On SIGTERM each worker
stops accepting, lets the requests in flight finish (up to ``GRACE_SECONDS``) and exits.

Examples:
    From Python, in a background thread (for notebooks and tests):

    >>> with Server(ServerSettings("saved_models/deep", "deep", port=0, grpc_port=0)) as server:  # doctest: +SKIP
    ...     requests.post(server.rest_url + ":predict", json={"instances": images.tolist()})

    Blocking until SIGINT or SIGTERM, as ``tfae serve`` does:

    >>> serve(ServerSettings("saved_models/deep", "deep", workers=2))  # doctest: +SKIP
"""

import contextlib
import dataclasses
import json
import os
import signal
import socket
import threading
import time

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from tfae.errors import TfaeError
from tfae.serving import grpc_api, rest
from tfae.serving.servables import Repository, signature_defs
from tfae.startup import start_tensorflow

GRACE_SECONDS = 3  # requests in flight at SIGTERM may take this long; the process exits by 5 s
START_SECONDS = 300  # a worker imports TensorFlow and loads the model
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
        max_request_bytes: the largest REST body and gRPC message taken.

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


def create_app(settings):
    """One worker's ASGI application: REST, with gRPC started and stopped by its lifespan.

    Examples:
        >>> app = create_app(ServerSettings("saved_models/deep", "deep"))  # doctest: +SKIP
        >>> uvicorn.Server(uvicorn.Config(app, lifespan="on")).run()  # doctest: +SKIP
    """
    repository = Repository(settings.export_dir, settings.name, settings.labels)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await repository.resolve(settings.name)  # load the served version before answering
        grpc_server = await grpc_api.start(repository, f"{settings.host}:{settings.grpc_port}",
                                           settings.max_request_bytes, reuse_port=True)
        try:
            yield
        finally:
            await grpc_server.stop(GRACE_SECONDS)

    return rest.create_app(repository, settings.max_request_bytes, lifespan)


def app_from_environment():
    """``create_app`` for a worker process, from the settings its supervisor left in the
    environment (uvicorn starts workers from an import string, so they cannot be handed objects).

    Examples:
        >>> uvicorn.Config("tfae.serving.server:app_from_environment", factory=True, workers=2)  # doctest: +SKIP
    """
    settings = json.loads(os.environ[_SETTINGS_VARIABLE])
    start_tensorflow(settings.pop("verbose"))
    return create_app(ServerSettings(**settings))


class _Protocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, but a connection that never sends a request is closed after the
    keep-alive timeout too (uvicorn times out only connections idle after a request), so idle
    sockets cannot pile up."""

    def connection_made(self, transport):
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                            self.timeout_keep_alive_handler)


def _config(app, **options):
    """uvicorn's settings for tfae: its HTTP protocol, the lifespan required (a worker whose
    model or gRPC port fails does not serve), errors only in the log, TF Serving-like timeouts."""
    return uvicorn.Config(app, http=_Protocol, lifespan="on", log_level="error",
                          access_log=False, timeout_keep_alive=5,
                          timeout_graceful_shutdown=GRACE_SECONDS,
                          timeout_worker_healthcheck=START_SECONDS, **options)


def _bind(settings):
    """The REST socket, bound and listening, and the gRPC port, found free; settings with both.

    The gRPC port is checked by binding it without ``SO_REUSEPORT`` (so a port anyone holds is
    refused here, in one line) and then kept bound with it, unlistening, for the workers to share.
    """
    try:
        rest_socket = socket.create_server((settings.host, settings.port), backlog=2048)
    except OSError as error:
        raise TfaeError(f"cannot bind {settings.host} port {settings.port} for REST: "
                        f"{os.strerror(error.errno)} (--port chooses another)") from None
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
                        f"{os.strerror(error.errno)} (--grpc-port chooses another)") from None
    settings = dataclasses.replace(settings, port=rest_socket.getsockname()[1],
                                   grpc_port=grpc_port)
    return rest_socket, grpc_reservation, settings


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

    Examples:
        >>> serve(ServerSettings("saved_models/deep", "deep"))  # doctest: +SKIP
        serving saved_models/deep as 'deep' on http://127.0.0.1:8501/v1/models/deep (REST) and 127.0.0.1:8500 (gRPC) with 1 worker
    """
    if settings.workers < 1:
        raise TfaeError(f"--workers must be >= 1, not {settings.workers}")
    # A bad folder or a served version that does not parse is refused here, in one line, not in
    # a worker's traceback.
    repository = Repository(settings.export_dir, settings.name, settings.labels)
    signature_defs(repository.export_dir / str(repository.versions()[-1]))
    rest_socket, reservation, settings = _bind(settings)
    started = threading.Thread(target=_announce_when_answering, args=(settings, announce),
                               daemon=True)
    with rest_socket, reservation:
        if settings.workers == 1:
            server = uvicorn.Server(_config(create_app(settings)))
            started.start()
            with _stopped_quietly():
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
    announce(f"serving {settings.export_dir} as {settings.name!r} on http://{address}:"
             f"{settings.port}/v1/models/{settings.name} (REST) and {address}:"
             f"{settings.grpc_port} (gRPC) with {workers}")
