"""Serving exports as TensorFlow Serving does: its REST API and its gRPC API, from one process or several.

TF Serving's own clients work unchanged: plain HTTP in its documented JSON formats on the REST
port (8501), and ``tensorflow_serving.apis`` stubs on the gRPC port (8500). The highest version in
the export folder is served by default, a newly exported one is picked up without a restart, and
requests that arrive while the model runs are run together as one batch.

- ``servables``: the versions, their signatures, batched calls and errors, shared by both;
- ``rest``: the REST API, a Starlette application;
- ``grpc_api``: ``PredictionService`` and ``ModelService`` on ``grpc.aio``;
- ``server``: uvicorn, its worker processes and the gRPC server beside each.

Examples:
    >>> from tfae.serving import Server, ServerSettings
    >>> with Server(ServerSettings("saved_models/deep", "deep", port=0, grpc_port=0)) as server:  # doctest: +SKIP
    ...     print(server.rest_url, server.grpc_target)
    http://127.0.0.1:40127/v1/models/deep 127.0.0.1:38813
"""

from tfae.serving.server import Server, ServerSettings, serve

__all__ = ["Server", "ServerSettings", "serve"]
