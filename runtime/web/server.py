"""The operators' listener on the gateway's own asyncio loop (aiohttp): ``GET /metrics`` (Prometheus text),
``GET /healthz`` (200, or 503 with the reasons), ``GET /`` (the live page), ``GET /events`` (server-sent events that
feed it) and ``/static/`` (the page's files, uPlot included: nothing from a CDN).

Security: bound to a loopback address it serves local users as the terminal does. Bound anywhere else it needs a
token (``[web] token_file``, mode 0600, or the environment variable ``BIOMOE_WEB_TOKEN``) and refuses to start
without one; with a token every path but ``/healthz`` and ``/static/`` requires it (``Authorization: Bearer``, or
``/?token=`` once in a browser, which sets an HttpOnly cookie). Raw signal goes only to a client that passed that
check. ``tls_cert`` and ``tls_key`` serve HTTPS.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import json
import logging
import os
import pathlib
import ssl
import stat
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from biomoe_edge.runtime.sinks import GuardedSink
from biomoe_edge.runtime.web.health import HealthMonitor
from biomoe_edge.runtime.web.live import LiveState
from biomoe_edge.runtime.web.metrics import LoopLagProbe, gateway_registry

log = logging.getLogger(__name__)

TOKEN_ENV = "BIOMOE_WEB_TOKEN"
COOKIE = "biomoe_edge_token"
STATIC = pathlib.Path(__file__).with_name("static")


class WebError(ValueError):
    """A listener that must not start as configured (no token off loopback, a token file others can read...)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token_file=None, environ=None) -> str | None:
    """The token from ``token_file`` (which must be mode 0600 or stricter: a secret others can read is refused) or
    from ``$BIOMOE_WEB_TOKEN``; None when neither is set."""
    if token_file is not None:
        path = pathlib.Path(token_file)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise WebError(f"web.token_file {path}: {exc.strerror or exc}") from None
        if mode & 0o077:
            raise WebError(f"web.token_file {path}: mode {mode:o} lets others read the token; chmod 600 {path}")
        if not token:
            raise WebError(f"web.token_file {path} is empty")
        return token
    token = (os.environ if environ is None else environ).get(TOKEN_ENV)
    if token is not None and not token.strip():
        raise WebError(f"{TOKEN_ENV} is set but empty")
    return token.strip() if token else None


def server_tls(cert, key) -> ssl.SSLContext | None:
    if cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise WebError(f"web.tls_cert {cert} / web.tls_key {key}: {exc}") from None
    return context


class WebServer:
    """``async with WebServer(gateway, web_config):`` serves while the gateway runs (inside ``async with gateway``).

    ``warnings``: a callable returning the warnings the console shows (``GatewayConsole.warnings.items``).
    ``update_s``: how often the page gets a new snapshot. ``port`` is the bound port after :meth:`start` (useful
    with port 0)."""

    def __init__(self, gateway, settings, *, warnings=None, model_line: str | None = None, update_s: float = 1.0,
                 environ=None, clock=time.monotonic):
        self.gateway = gateway
        self.settings = settings
        self.update_s = update_s
        self.token = read_token(settings.token_file, environ)
        if self.token is None and not is_loopback(settings.host):
            raise WebError(f"web.listen {settings.listen} is not a loopback address: set a token (web.token_file, "
                           f"mode 0600, or ${TOKEN_ENV}) or listen on 127.0.0.1")
        self.tls = server_tls(settings.tls_cert, settings.tls_key)
        self.health = HealthMonitor(gateway, no_device_s=settings.no_device_s, engine_stall_s=settings.engine_stall_s,
                                    clock=clock)
        self.registry, self.observer = gateway_registry(gateway, self.health)
        self.live = LiveState(gateway, health=self.health, warnings=warnings, model_line=model_line)
        self.loop_probe = LoopLagProbe(self.registry)
        self.port: int | None = None
        self.clients = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self._update = asyncio.Condition()
        self._latest: str | None = None  # the newest snapshot, JSON
        #: seconds each shared snapshot took to build and encode (on the gateway's loop)
        self.snapshot_seconds: collections.deque = collections.deque(maxlen=3600)

    @property
    def url(self) -> str:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    # -- life cycle -----------------------------------------------------------------------------------------
    async def start(self) -> "WebServer":
        gateway = self.gateway
        gateway.sinks.append(GuardedSink(self.observer))
        gateway.on_prediction(self.observer.prediction)
        gateway.on_embedding(self.live.embedding)
        gateway.on_prediction(self.live.prediction)
        gateway.pipeline.add_observer(self.live.signals)
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/events", self._events)
        app.router.add_get("/state", self._state)
        app.router.add_static("/static/", STATIC, show_index=False)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, ssl_context=self.tls)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._tasks = [asyncio.ensure_future(self.loop_probe.run()), asyncio.ensure_future(self._publish())]
        log.info("web: %s (metrics at /metrics, health at /healthz)%s", self.url,
                 "; token required" if self.token else "")
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        async with self._update:
            self._latest = None
            self._update.notify_all()  # SSE clients see no snapshot and end
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "WebServer":
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    # -- authentication ---------------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        given = request.headers.get("Authorization", "")
        candidates = [given[7:]] if given.startswith("Bearer ") else []
        candidates += [request.cookies.get(COOKIE, ""), request.query.get("token", "")]
        return any(c and hmac.compare_digest(c.encode(), self.token.encode()) for c in candidates)

    def _refuse(self) -> web.Response:
        return web.Response(status=401, text="401: a token is required (Authorization: Bearer TOKEN, or open "
                            "/?token=TOKEN once)\n", headers={"WWW-Authenticate": "Bearer"})

    # -- handlers ------------------------------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._refuse()
        if "token" in request.query:  # once: keep it in a cookie and drop it from the address bar
            response = web.HTTPFound("/")
            response.set_cookie(COOKIE, request.query["token"], httponly=True, samesite="Strict",
                                secure=self.tls is not None)
            raise response
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._refuse()
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        reasons = self.health.reasons()
        if reasons:
            return web.Response(status=503, text="unhealthy\n" + "".join(f"- {r}\n" for r in reasons))
        return web.Response(text="ok\n")

    async def _state(self, request: web.Request) -> web.Response:
        """One snapshot as JSON (what /events streams), for scripts and tests."""
        if not self._authorized(request):
            return self._refuse()
        return web.json_response(self.live.snapshot(with_signals=True))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._refuse()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        self.clients += 1
        try:
            await response.write(f"data: {self._snapshot()}\n\n".encode())
            while True:
                async with self._update:
                    await self._update.wait()
                    data = self._latest
                if data is None:
                    break
                await response.write(f"data: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.clients -= 1
        return response

    def _snapshot(self) -> str:
        # Every client that reaches /events passed _authorized: the signal goes with it.
        return json.dumps(self.live.snapshot(with_signals=True), allow_nan=False, separators=(",", ":"))

    async def _publish(self) -> None:
        """One snapshot per ``update_s`` while a page is open, shared by all of them."""
        while True:
            await asyncio.sleep(self.update_s)
            if not self.clients:
                continue
            started = time.perf_counter()
            try:
                data = self._snapshot()
                self.snapshot_seconds.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - the page must never take the gateway down
                log.warning("web: live snapshot failed: %s: %s", type(exc).__name__, exc)
                continue
            async with self._update:
                self._latest = data
                self._update.notify_all()
