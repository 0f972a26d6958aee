"""The page ``tfae serve`` shows a person at ``/``: a client of the REST API in the browser.

The page (``page.html``, ``page.js`` and ``page.css`` beside this module) shows the
served model (``GET /page/model.json``: its name, versions, family, input size, signatures and
anomaly calibration), takes images dropped or picked, and posts each as TF Serving's
``{"b64": ...}`` to the ``:predict`` endpoint any client uses: ``prepare_bytes`` (the input as
the model sees it), ``reconstruct_bytes``, ``score_bytes`` (score, flag and error map) and
``encode_bytes`` (codes, downloadable as CSV). A variational autoencoder's page also decodes
codes drawn from a seed (``sample``).

It is served from this package alone: no file from elsewhere, every script and style tfae's own,
answered with a Content-Security-Policy that lets the page run only those (``POLICY``). Its
routes are fixed names (``FILES``), never a path taken from the request, so nothing else on the
server's disk can be read through them. The REST API's limits apply to the page's requests as
to any client's; the page sends one image a request and at most ``MAX_IMAGES`` a drop.

Examples:
    >>> from tfae.serving.page import FILES, POLICY
    >>> sorted(FILES)
    ['/', '/page/page.css', '/page/page.js']
    >>> "script-src 'self'" in POLICY
    True
"""

import ipaddress
import json
import pathlib

from starlette.responses import Response

from tfae.runs import ExportFolder

FOLDER = pathlib.Path(__file__).parent
# route: (file in FOLDER, media type)
FILES = {"/": ("page.html", "text/html; charset=utf-8"),
         "/page/page.js": ("page.js", "text/javascript; charset=utf-8"),
         "/page/page.css": ("page.css", "text/css; charset=utf-8")}
MODEL_ROUTE = "/page/model.json"
MAX_IMAGES = 64  # files the page takes at one drop, each its own request
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"content-security-policy": POLICY, "x-content-type-options": "nosniff",
           "referrer-policy": "no-referrer", "cache-control": "no-store"}


def shown_by_default(host):
    """Whether the page is on without ``--page``/``--no-page``: on a loopback address only, where
    only this machine's users reach it; on another address a person must ask for it.

    Examples:
        >>> shown_by_default("127.0.0.1"), shown_by_default("localhost"), shown_by_default("0.0.0.0")
        (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def page_routes(repository, max_json_bytes):
    """``{path: async handler}`` of the page's files and its model description, for
    ``tfae.serving.rest.create_app`` to route.

    Examples:
        >>> sorted(page_routes(repository, 16 << 20))  # doctest: +SKIP
        ['/', '/page/model.json', '/page/page.css', '/page/page.js']
    """
    contents = {route: (FOLDER / name).read_bytes() for route, (name, _) in FILES.items()}

    def file(route):
        async def answer(request):
            return Response(contents[route], media_type=FILES[route][1], headers=HEADERS)
        return answer

    async def model(request):
        version, _ = await repository.resolve(repository.name)
        return Response(json.dumps(describe(repository, version, max_json_bytes)),
                        media_type="application/json", headers=HEADERS)

    return {**{route: file(route) for route in FILES}, MODEL_ROUTE: model}


def describe(repository, version, max_json_bytes):
    """What the page shows of the served model: its ``version`` (the newest that loads) and the
    others on disk, the export's recorded settings and calibration, and its signatures' inputs.

    Examples:
        >>> describe(repository, 2, 16 << 20)["versions"]  # doctest: +SKIP
        [1, 2]
    """
    path = repository.export_dir / str(version)
    definitions = repository.signature_defs(version)
    encode = definitions["encode"].inputs["images"].tensor_shape.dim
    codes = definitions["encode"].outputs["codes"].tensor_shape.dim
    recorded = {}
    for name in (ExportFolder.ANOMALY_FILE, ExportFolder.INFO_FILE):
        try:
            recorded[name] = json.loads((path / name).read_text())
        except (OSError, ValueError):  # an export made before tfae wrote it, or damaged
            recorded[name] = None
    info = recorded[ExportFolder.INFO_FILE] or {}
    return {"name": repository.name, "version": version, "versions": repository.versions(),
            "model": info.get("model"), "resize": info.get("resize"),
            "image_shape": [int(dim.size) for dim in encode[1:]],
            "latent_dim": int(codes[-1].size), "signatures": sorted(definitions),
            "anomaly": recorded[ExportFolder.ANOMALY_FILE], "max_images": MAX_IMAGES,
            "max_request_bytes": max_json_bytes}
