"""The hub's web application: Starlette on uvicorn, Jinja2 pages, and the same actions as a JSON API.

Why Starlette: the hub is a handful of routes over the project's own library (screen, release,
publish, catalogue); Starlette gives ASGI, multipart parsing, signed-cookie sessions and file
responses with ranges and ETags, without an ORM or a plugin system the hub would not use
(Datasette is read-only at heart; FastAPI would add pydantic models for five endpoints).

Two ways in, one set of rules:

* **People** sign in with an email and password (Argon2id); the session is a signed cookie that
  expires (``SESSION_SECONDS``), ``SameSite=Strict``, and every form post carries a CSRF token bound to
  the session (checked in constant time), so a post from another site is refused.
* **Programs** send ``Authorization: Bearer <token>`` to ``/api/…``; no cookie is read there, so
  CSRF does not arise. An organisation with a registered Ed25519 key must sign each API upload
  (``X-Signature``: base64 signature of the file's bytes), so a leaked token alone cannot upload.

An upload, its report, marked files and preview are its organisation's alone: for anyone else each
such URL is 404, the same answer as for an id that does not exist. Request bodies are capped
(``MAX_BODY``) before they are read, uploads are rate-limited per organisation and sign-ins per
address, and every page is sent with a Content-Security-Policy that allows no script.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import tempfile
import threading
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opendata.errors import OpenDataError
from opendata.hub import uploads as lifecycle
from opendata.hub.comparison import Comparison, Indicators, compare
from opendata.hub.sources import Cached, Source
from opendata.hub.store import DB_FILE, HubError, Store, Upload
from opendata.page import STYLE, FunnelPoint, funnel_figure
from opendata.signing import SignatureError, fingerprint, load_public_key, parse_public_key, verify_signature

MAX_BODY = 200 * 1024 * 1024  # bytes per request: the spreadsheet checker's file cap
UPLOADS_PER_MINUTE = 10  # per organisation
SIGN_INS_PER_MINUTE = 10  # per client address
SESSION_SECONDS = 8 * 3600
COMPARE_ANSWERS = 4096  # compare answers kept in memory (a few kB each)
POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
)
PREVIEW_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse a request body over ``limit`` bytes: by its Content-Length at once, else while it streams."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(send, self.limit)
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except _TooLarge:
            if not started:
                await _too_large(send, self.limit)


async def _too_large(send: Send, limit: int) -> None:
    body = f"Request body over {limit} bytes: upload smaller files.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"content-security-policy"]
                given = dict(message.get("headers", [])).get(b"content-security-policy")
                headers += [
                    (b"content-security-policy", given or POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


class Answers:
    """The last ``size`` answers by key (least recently used out), shared by the threads serving them."""

    def __init__(self, size: int):
        self.size, self._lock, self._items = size, threading.Lock(), OrderedDict()

    def get(self, key: Any) -> bytes | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: Any, body: bytes) -> None:
        with self._lock:
            self._items[key] = body
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class RateLimit:
    """At most ``per_minute`` events per key in any 60 seconds (in memory: one hub process)."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.events: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        seen = self.events[key]
        while seen and now - seen[0] > 60:
            seen.popleft()
        if len(seen) >= self.per_minute:
            return False
        seen.append(now)
        return True


def _not_found() -> HTTPException:
    return HTTPException(404, "Not found")


def create_app(root: str | Path, *, secure_cookies: bool = False, max_body: int = MAX_BODY) -> Starlette:
    """The hub at ``root`` (made by ``init_hub``) as an ASGI application."""
    layout = lifecycle.Layout(Path(root))
    if not (layout.root / DB_FILE).is_file():
        raise HubError(f"{layout.root} is not a hub (make one with: opendata hub init {layout.root})")
    store = Store(layout.root)
    store.create()  # adds any table a newer opendata keeps; a no-op otherwise
    hub_fingerprint = fingerprint(load_public_key(layout.public_key))
    templates = Environment(loader=PackageLoader("opendata.hub", "templates"), autoescape=select_autoescape())
    templates.globals["style"] = STYLE
    upload_limit, sign_in_limit = RateLimit(UPLOADS_PER_MINUTE), RateLimit(SIGN_INS_PER_MINUTE)
    indicators = Indicators()
    shown = Cached(layout.root, store)
    answers = Answers(COMPARE_ANSWERS)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session = request.session
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        html = templates.get_template(name).render(
            org=session.get("org"), email=session.get("email"), csrf=session["csrf"], **context
        )
        return HTMLResponse(html, status_code=status)

    # --- who is asking ---

    def session_org(request: Request) -> str | None:
        org, since = request.session.get("org"), request.session.get("since", 0)
        if org and time.time() - since < SESSION_SECONDS:
            return org
        request.session.clear()
        return None

    def bearer_org(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        org = store.org_of_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if org is None:
            raise HTTPException(401, "Send Authorization: Bearer <token> (from the hub's admin).")
        return org

    async def checked_form(request: Request) -> Any:
        """The posted form, refused unless it carries this session's CSRF token."""
        form = await request.form(max_files=lifecycle.MAX_FILES, max_fields=20)
        expected = request.session.get("csrf", "")
        given = form.get("csrf", "")
        if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
            raise HTTPException(
                403, "The form's security token is missing or out of date: reload the page and try again."
            )
        return form

    def own_upload(org: str | None, upload_id: str) -> Upload:
        upload = store.upload(upload_id, org) if org else None
        if upload is None:
            raise _not_found()
        return upload

    async def take_files(form: Any, org: str, kind: str, actor: str, signature: str | None = None) -> Upload:
        corrects = str(form.get("corrects") or "").strip()
        if corrects and not corrects.isdigit():
            raise HTTPException(400, "'corrects' is the number of the query this upload corrects.")
        if not upload_limit.allow(org):
            raise HTTPException(429, f"More than {UPLOADS_PER_MINUTE} uploads in a minute: wait and try again.")
        parts = [v for v in form.getlist("file") if isinstance(v, UploadFile) and v.filename]
        if not parts:
            raise HTTPException(400, "Choose a file to upload (CSV, XLSX or ODS).")
        registered = store.org(org).public_key
        temp = Path(tempfile.mkdtemp(prefix="upload-", dir=layout.root))
        try:
            files: dict[str, Path] = {}
            for i, part in enumerate(parts):
                if part.filename in files:
                    raise HTTPException(400, f"Two files are called {part.filename}: rename one.")
                path = temp / str(i)
                with path.open("wb") as f:
                    while chunk := await part.read(1 << 20):
                        f.write(chunk)
                files[part.filename] = path
            if registered and actor.startswith("token:"):
                _check_signature(registered, signature, [files[p.filename] for p in parts])
            return await run_in_threadpool(
                lifecycle.receive, layout, store, org, kind, files, actor, int(corrects) if corrects else None
            )
        except OpenDataError as exc:
            raise HTTPException(400, str(exc)) from None
        finally:
            for path in temp.glob("*"):
                path.unlink()
            temp.rmdir()

    async def act(fn: Callable[..., Path], upload: Upload, actor: str) -> Path:
        """Preview or publish off the event loop (a release takes seconds; readers must not wait)."""
        try:
            return await run_in_threadpool(fn, layout, store, upload, actor)
        except OpenDataError as exc:
            raise HTTPException(409, str(exc)) from None

    # --- pages ---

    async def home(request: Request) -> Response:
        found = await run_in_threadpool(shown)
        return page(request, "home.html", sources=found, publishers=store.publishers(), fingerprint=hub_fingerprint)

    def comparison_of(request: Request) -> tuple[list, Any, dict, Comparison | None]:
        found = shown()
        frame, choices = indicators.frame(found), indicators.options(found)
        q = request.query_params
        indicator = q.get("indicator") or (choices["indicators"][0] if choices["indicators"] else None)
        if indicator is None:
            return found, frame, choices, None
        level, period = q.get("level") or "cpa", q.get("period") or "Total"
        if indicator not in choices["indicators"] or level not in choices["levels"] or period not in choices["periods"]:
            raise HTTPException(400, "Choose an indicator, a level and a period from the lists.")
        wanted, area = q.getlist("programme") or None, q.get("area") or None
        if area is not None and area not in choices["areas"]:
            raise HTTPException(400, "Choose an area from the list.")
        rows = indicators.rows(found, indicator, period)
        return found, frame, choices, compare(found, rows, indicator, level, period, wanted, area)

    async def compare_page(request: Request) -> Response:
        found, _, choices, result = await run_in_threadpool(comparison_of, request)
        figure = None
        if result is not None and result.points and result.benchmark is not None:
            points = [
                FunnelPoint(
                    f"{p.entity} ({p.publisher}, {p.kind})",
                    p.denominator,
                    p.value,
                    p.lower_95,
                    p.upper_95,
                    p.verdict_95,
                )
                for p in result.points
            ]
            what = (
                f"{len(points)} providers at {result.level} level, {len(result.programmes)} programme(s), "
                f"period {result.period}"
            )
            figure = funnel_figure(result.title, what, points, result.benchmark, result.denominator, "Provider", 1)
        area = request.query_params.get("area")
        return page(request, "compare.html", sources=found, choices=choices, result=result, figure=figure, area=area)

    def source_of(name: str) -> Source:
        found = next((s for s in shown() if s.package == name), None)
        if found is None:
            raise _not_found()
        return found

    async def package_page(request: Request) -> Response:
        source = source_of(request.path_params["name"])
        org = session_org(request)
        owner = store.package_owner(source.package)
        return page(
            request,
            "package.html",
            source=source,
            queries=store.queries(source.package),
            can_answer=org is not None and org == owner,
            signed_in=org is not None,
        )

    async def raise_query(request: Request) -> Response:
        source = source_of(request.path_params["name"])
        org = session_org(request)
        if org is None:
            return RedirectResponse("/sign-in", 303)
        form = await checked_form(request)
        try:
            store.add_query(
                source.package,
                source.version,
                str(form.get("figure", "")),
                str(form.get("text", "")),
                f"user:{request.session['email']}",
                org,
            )
        except OpenDataError as exc:
            raise HTTPException(400, str(exc)) from None
        return RedirectResponse(f"/packages/{source.package}#queries", 303)

    async def answer_query(request: Request) -> Response:
        org = session_org(request)
        qid = request.path_params["id"]
        query = store.query(qid)
        if query is None or org is None or store.package_owner(query.package) != org:
            raise _not_found()
        form = await checked_form(request)
        try:
            store.answer(qid, str(form.get("text", "")), f"user:{request.session['email']}")
        except OpenDataError as exc:
            raise HTTPException(400, str(exc)) from None
        return RedirectResponse(f"/packages/{query.package}#query-{qid}", 303)

    async def queries_api(request: Request) -> Response:
        source = source_of(request.path_params["name"])
        return JSONResponse({"package": source.package, "queries": [q.__dict__ for q in store.queries(source.package)]})

    async def compare_api(request: Request) -> Response:
        """The comparison as JSON; the same question of the same packages is answered from memory
        (the packages change only when one is published or mirrored, and ``shown`` then counts a re-read)."""
        shown()
        key = (shown.generation, tuple(sorted(request.query_params.multi_items())))
        body = answers.get(key)
        if body is None:
            _, _, choices, result = await run_in_threadpool(comparison_of, request)
            body = JSONResponse({"options": choices, "comparison": result.to_dict() if result else None}).body
            answers.put(key, body)
        return Response(body, media_type="application/json")

    async def sign_in(request: Request) -> Response:
        if request.method == "GET":
            return page(request, "sign_in.html")
        form = await checked_form(request)
        client = request.client.host if request.client else "?"
        if not sign_in_limit.allow(client):
            return page(request, "sign_in.html", 429, error="Too many attempts: wait a minute and try again.")
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        org = store.sign_in(email, password)
        if org is None:
            store.log(f"user:{email[:254]}", None, "sign-in-refused", None, client)
            return page(request, "sign_in.html", 401, error="That email and password do not match an account.")
        request.session.clear()  # a fresh session (and CSRF token) after signing in
        request.session.update({"org": org, "email": email.strip().lower(), "since": int(time.time())})
        store.log(f"user:{email}", org, "sign-in", None, client)
        return RedirectResponse("/uploads", 303)

    async def sign_out(request: Request) -> Response:
        await checked_form(request)
        request.session.clear()
        return RedirectResponse("/", 303)

    async def uploads_page(request: Request) -> Response:
        org = session_org(request)
        if org is None:
            return RedirectResponse("/sign-in", 303)
        if request.method == "POST":
            form = await checked_form(request)
            upload = await take_files(form, org, str(form.get("kind", "records")), f"user:{request.session['email']}")
            return RedirectResponse(f"/uploads/{upload.id}", 303)
        return page(request, "uploads.html", uploads=store.uploads(org))

    async def upload_page(request: Request) -> Response:
        upload = own_upload(session_org(request), request.path_params["id"])
        return page(
            request, "upload.html", upload=upload, report=upload.report, preview=lifecycle.preview_dir(layout, upload)
        )

    async def upload_action(request: Request) -> Response:
        org = session_org(request)
        upload = own_upload(org, request.path_params["id"])
        await checked_form(request)
        actor = f"user:{request.session['email']}"
        await act(lifecycle.preview if _action(request) == "preview" else lifecycle.publish_upload, upload, actor)
        return RedirectResponse(f"/uploads/{upload.id}", 303)

    async def todo(request: Request) -> Response:
        upload = own_upload(_any_org(request), request.path_params["id"])
        return FileResponse(
            lifecycle.todo_path(layout, upload),
            media_type="text/csv; charset=utf-8",
            filename=f"todo-{upload.id[:8]}.csv",
        )

    async def marked(request: Request) -> Response:
        upload = own_upload(_any_org(request), request.path_params["id"])
        path = await run_in_threadpool(lifecycle.marked_path, layout, upload, request.path_params["name"])
        if path is None:
            raise _not_found()
        return FileResponse(
            path,
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            filename=f"marked-{path.name}",
        )

    async def preview_file(request: Request) -> Response:
        upload = own_upload(_any_org(request), request.path_params["id"])
        folder = lifecycle.preview_dir(layout, upload)
        rel = request.path_params.get("path") or "index.html"
        path = _inside(folder, rel) if folder else None
        if path is None:
            raise _not_found()
        response = FileResponse(path)
        response.headers["content-security-policy"] = PREVIEW_POLICY
        response.headers["cache-control"] = "private, no-store"
        return response

    def _any_org(request: Request) -> str | None:
        if request.url.path.startswith("/api/"):
            return bearer_org(request)
        return session_org(request)

    # --- API ---

    async def api_upload(request: Request) -> Response:
        org = bearer_org(request)
        form = await request.form(max_files=lifecycle.MAX_FILES, max_fields=20)
        upload = await take_files(
            form, org, str(form.get("kind", "records")), f"token:{org}", request.headers.get("x-signature")
        )
        return JSONResponse(_upload_json(upload), status_code=201 if upload.status == "accepted" else 422)

    async def api_get(request: Request) -> Response:
        return JSONResponse(_upload_json(own_upload(bearer_org(request), request.path_params["id"])))

    async def api_action(request: Request) -> Response:
        org = bearer_org(request)
        upload = own_upload(org, request.path_params["id"])
        chosen = lifecycle.preview if _action(request) == "preview" else lifecycle.publish_upload
        await act(chosen, upload, f"token:{org}")
        return JSONResponse(_upload_json(store.upload(upload.id, org)))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return page(request, "error.html", exc.status_code, code=exc.status_code, message=exc.detail)

    routes = [
        Route("/", home),
        Route("/compare", compare_page),
        Route("/api/compare", compare_api),
        Route("/packages/{name}", package_page),
        Route("/packages/{name}/queries", raise_query, methods=["POST"]),
        Route("/queries/{id:int}/answer", answer_query, methods=["POST"]),
        Route("/api/packages/{name}/queries", queries_api),
        Route("/sign-in", sign_in, methods=["GET", "POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/uploads", uploads_page, methods=["GET", "POST"]),
        Route("/uploads/{id}", upload_page),
        Route("/uploads/{id}/{action:str}", upload_action, methods=["POST"]),
        Route("/uploads/{id}/todo.csv", todo),
        Route("/uploads/{id}/marked/{name}.xlsx", marked),
        Route("/uploads/{id}/preview/{path:path}", preview_file),
        Route("/api/uploads", api_upload, methods=["POST"]),
        Route("/api/uploads/{id}", api_get),
        Route("/api/uploads/{id}/{action:str}", api_action, methods=["POST"]),
        Route("/api/uploads/{id}/todo.csv", todo),
        Route("/api/uploads/{id}/marked/{name}.xlsx", marked),
        Route("/api/uploads/{id}/preview/{path:path}", preview_file),
        Mount("/data", app=PublicTree(layout.public)),
        Mount("/publishers", app=PublicTree(layout.root / "publishers")),
        Route("/hub.pub", lambda r: FileResponse(layout.public_key, media_type="text/plain; charset=utf-8")),
    ]
    secret = layout.session_secret.read_text(encoding="ascii").strip()
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, limit=max_body),
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="hub_session",
            max_age=SESSION_SECONDS,
            same_site="strict",
            https_only=secure_cookies,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: http_error})


def _action(request: Request) -> str:
    if request.path_params["action"] not in ("preview", "publish"):
        raise _not_found()
    return request.path_params["action"]


class PublicTree(StaticFiles):
    """The hub's public release tree, as ``opendata sync`` and ``opendata serve`` clients expect it.

    Hidden entries (the tree's lock, partial moves) are never served."""

    def __init__(self, directory: Path):
        super().__init__(directory=directory, html=True, check_dir=False)

    async def get_response(self, path: str, scope: Scope) -> Response:
        if any(part.startswith(".") for part in Path(path).parts):
            return Response("Not found\n", 404, media_type="text/plain")
        return await super().get_response(path, scope)


def _inside(folder: Path, rel: str) -> Path | None:
    """``folder/rel`` if it is a file inside ``folder`` (no escape by ``..`` or links), else None."""
    if any(part in ("", ".", "..") or part.startswith(".") for part in rel.split("/")):
        return None
    path = (folder / rel).resolve()
    return path if path.is_file() and path.is_relative_to(folder.resolve()) else None


def _check_signature(registered: str, signature: str | None, paths: list[Path]) -> None:
    """Each file must carry the organisation's Ed25519 signature (comma-separated, in file order)."""
    given = (signature or "").split(",")
    if len(given) != len(paths) or not all(given):
        raise SignatureError(f"{len(paths)} file(s) need {len(paths)} signature(s) in X-Signature (comma-separated)")
    key = parse_public_key(registered.encode("ascii"), "the organisation's registered key")
    for path, sig in zip(paths, given, strict=True):
        try:
            base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("X-Signature is not base64") from None
        verify_signature(path.read_bytes(), sig.encode("ascii"), key, name=path.name, signature_name="X-Signature")


def _upload_json(upload: Upload | None) -> dict[str, Any]:
    assert upload is not None
    base = f"/api/uploads/{upload.id}"
    return {
        "id": upload.id,
        "status": upload.status,
        "created": upload.created,
        "input_kind": upload.input_kind,
        "files": list(upload.files),
        "package": upload.package,
        "version": upload.version,
        "report": upload.report,
        "links": {
            "todo": f"{base}/todo.csv",
            "marked": {name: f"{base}/marked/{name}.xlsx" for name in upload.files},
            **({"preview": f"{base}/preview/"} if upload.status == "previewed" else {}),
            **({"public": f"/data/{upload.package}/{upload.version}/"} if upload.status == "published" else {}),
        },
    }
