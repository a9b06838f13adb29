"""The review web app: server-rendered pages and a small script of our own; every read and write goes through
tasks.review (read-only catalog connections, corrections as new lake parts)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import duckdb
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from flows.review.security import CSRF_HEADER, SESSION_COOKIE, Session, SessionStore, is_loopback_name, same_secret
from schemas.home import HomeLayout
from schemas.review import ACTIONS, CONFIRM, UNDECIDED, ReviewError, candidate_rank, item_kind, parse_item_key
from tasks import review as review_tasks
from tasks.catalog import CatalogMissingError
from tasks.explain import explain_face
from tasks.retrain_launch import RETRAIN_KINDS, RetrainBusyError, start_retrain

STATIC = Path(__file__).parent / "static"
REVIEWER_NAME = re.compile(r"^[\w .@-]{1,64}$")
MAX_FORM_BYTES = 4096
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ACTION_LABELS = {
    "c": "confirm",
    "m": "male",
    "f": "female",
    "n": "not a face",
    "y": "success",
    "x": "failure",
    "b": "draw the face's box",
    "e": "no face missed here",
    "w": "a new individual (none of these)",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ReviewServer:
    """What one review app serves: the home, the login secret (None: no login, loopback only), the reviewer named on
    the command line, the audit share, whether requests must name the loopback host, and the configuration file."""

    home: HomeLayout
    password: str | None
    reviewer: str
    audit_share: float
    loopback_only: bool
    config_file: Path | None = None  # passed on to the retrains the page starts


class ReviewRequest(BaseModel):
    """One key press on an item."""

    key: str = Field(max_length=400)
    action: str = Field(min_length=1, max_length=1)
    seconds_spent: float = Field(default=0.0, ge=0, le=86_400)
    keystrokes: int = Field(default=1, ge=0, le=1000)
    skip: list[str] = Field(default_factory=list, max_length=1000)
    box: list[float] | None = Field(default=None, min_length=4, max_length=4)  # the drawn box, relative to the frame


class RetrainRequest(BaseModel):
    """Which model to retrain with the corrections."""

    kind: str = Field(max_length=20)


class ExplainRequest(BaseModel):
    """The face item whose guided Grad-CAM the page asks for."""

    key: str = Field(max_length=400)


class QueueRequest(BaseModel):
    """Items the page has skipped, so the next item is another one; first: an item to show before the queue (a link
    from the report)."""

    skip: list[str] = Field(default_factory=list, max_length=1000)
    first: str | None = Field(default=None, max_length=400)


def error(status: int, sentence: str) -> JSONResponse:
    """A JSON error carrying one sentence."""
    return JSONResponse({"error": sentence}, status_code=status, headers=SECURITY_HEADERS)


# Errors whose message is the one sentence the answer carries, and their status: a request that cannot be carried
# out, an item or file that does not exist, a file outside what the app serves, no catalog yet.
SENTENCE_STATUS: dict[type[Exception], int] = {
    ReviewError: 400,
    LookupError: 404,
    PermissionError: 403,
    CatalogMissingError: 503,
}


def sentence_handler(status: int) -> Any:
    """An exception handler answering the error's own sentence with the given status."""

    async def answer(request: Request, exc: Exception) -> Response:
        """The error's sentence as JSON."""
        return error(status, str(exc))

    return answer


def today() -> str:
    """The UTC day that seeds the audit draw."""
    return datetime.now(UTC).strftime("%Y-%m-%d")


def template_environment() -> Environment:
    """Jinja2 for the app's pages, autoescaping HTML."""
    return Environment(
        loader=PackageLoader("flows.review", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )


def candidate_text(item: dict[str, Any]) -> str:
    """An identity item's registered candidates with their similarity, best first."""
    pairs = zip(item.get("candidates") or [], item.get("candidate_scores") or [])
    return ", ".join(f"{name} {score:.2f}" for name, score in pairs) or "no registered animal"


def item_actions(kind: str, item: dict[str, Any]) -> list[dict[str, str]]:
    """The keys the page offers on an item: nothing to confirm in the abstain band, and an identity item's number keys
    only for the candidates it has, labelled with their names."""
    candidates = item.get("candidates") or []
    actions = []
    for k, (_, value) in ACTIONS[kind].items():
        if value == CONFIRM and item.get("call") in UNDECIDED:
            continue
        rank = candidate_rank(value)
        if rank is not None:
            if rank <= len(candidates):
                actions.append({"key": k, "label": f"it is {candidates[rank - 1]}"})
            continue
        actions.append({"key": k, "label": ACTION_LABELS[k]})
    return actions


def item_json(entry: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """What the page needs to show one queue entry (its queue row and what tasks.review shows of it): its call,
    probability, model, images and keys."""
    key = parse_item_key(entry["key"])
    details = {
        "face": [
            ("sex now", f"{item.get('sex')} ({item.get('sex_source')})"),
            ("animal", item.get("animal_id") or "not known"),
            ("detector", item.get("detector")),
            ("frame", item.get("media_path")),
        ],
        "animal": [
            ("sex now", f"{item.get('sex')} ({item.get('sex_source')})"),
            ("name", item.get("name")),
            ("faces", item.get("n_faces")),
            ("registry sex", item.get("sex_known") or "not registered"),
            ("faces disagreeing", item.get("disagreement")),
        ],
        "encounter": [
            ("outcome now", f"{item.get('outcome_final')} ({item.get('outcome_source')})"),
            ("pair", f"{item.get('male_id')} x {item.get('female_id')}"),
            ("started", item.get("started_at")),
            ("windows", item.get("n_segments")),
            ("recorded outcome", item.get("outcome") or "not recorded"),
        ],
        "frame": [
            ("camera", item.get("camera")),
            ("frame", item.get("media_path")),
            ("captured", item.get("captured_at")),
            ("size", f"{item.get('width')} x {item.get('height')} px"),
        ],
        "identity": [
            ("individual now", f"{item.get('individual')} ({item.get('individual_source')})"),
            ("machine said", f"{item.get('individual_machine')} ({item.get('machine_kind')})"),
            ("established by", item.get("established")),
            ("candidates", candidate_text(item)),
            ("frame", item.get("media_path")),
        ],
    }[key.kind]
    title = {"face": "Face", "animal": "Animal", "encounter": "Encounter", "frame": "Frame", "identity": "Who is"}[
        key.kind
    ]
    frame_id = item.get("media_id") if item.get("frame_boxes") is not None else None
    return {
        "key": entry["key"],
        "kind": key.kind,
        "title": f"{title} {key.target_id}" + (f" in drop {key.drop_id}" if key.drop_id else ""),
        "reason": entry["reason"],
        "audit": bool(entry["audit"]),
        "call": item.get("call"),
        "p": item.get("p"),
        "p_label": item.get("p_label"),
        "model_version": item.get("model_version"),
        "images": ["/files/" + quote(path) for path in item.get("images", [])],
        "frame": f"/frames/{quote(item['drop_id'], safe='')}/{quote(frame_id, safe='')}" if frame_id else None,
        "boxes": item.get("frame_boxes") or [],
        "details": [[label, "" if value is None else str(value)] for label, value in details],
        "actions": item_actions(key.kind, item),
        "remaining": entry.get("remaining"),
    }


def named_item(server: ReviewServer, key_text: str) -> dict[str, Any]:
    """One item the request names (decided or not), ready to show, with the queue's open count."""
    return item_json(*review_tasks.named_shown(server.home, parse_item_key(key_text), today(), server.audit_share))


def next_item(server: ReviewServer, skip: list[str]) -> dict[str, Any] | None:
    """The best open item the page has not skipped, ready to show."""
    found = review_tasks.next_shown(server.home, today(), server.audit_share, skip)
    return item_json(*found) if found else None


def create_app(server: ReviewServer) -> FastAPI:
    """The review app for one home."""
    app = FastAPI(title="breedwatch review", docs_url=None, redoc_url=None, openapi_url=None)
    sessions = SessionStore()
    pages = template_environment()

    def session_of(request: Request) -> Session | None:
        """The request's session, if its cookie names one."""
        return sessions.get(request.cookies.get(SESSION_COOKIE))

    def logged_in(request: Request) -> Session:
        """The request's logged-in session, or 401."""
        session = session_of(request)
        if session is None or not session.authenticated:
            raise HTTPException(401, "Log in first.")
        return session

    def check_csrf(request: Request, session: Session | None, submitted: str | None) -> Session:
        """Refuse a POST whose CSRF token is missing or not its session's (403)."""
        if session is None:
            raise HTTPException(
                403, "This request has no session, so its CSRF token cannot be checked; reload the page."
            )
        if not same_secret(submitted, session.csrf):
            raise HTTPException(403, "The CSRF token is missing or wrong; reload the page and try again.")
        return session

    def posted(request: Request) -> Session:
        """The session of an API POST: its CSRF token checked first (403), then its login (401)."""
        session = check_csrf(request, session_of(request), request.headers.get(CSRF_HEADER))
        if not session.authenticated:
            raise HTTPException(401, "Log in first.")
        return session

    def with_cookie(response: Response, token: str) -> Response:
        """Set the session cookie: not readable by scripts, never sent by other sites."""
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        """Answer only to the loopback name when bound there, check every POST's CSRF token before its body is read,
        and add the security headers."""
        if server.loopback_only and not is_loopback_name(request.headers.get("host", "")):
            return error(400, "This server answers only to 127.0.0.1 or localhost.")
        if request.method not in SAFE_METHODS and request.url.path != "/login":  # the login form checks its own field
            try:
                check_csrf(request, session_of(request), request.headers.get(CSRF_HEADER))
            except HTTPException as refused:
                return error(refused.status_code, refused.detail)
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Every HTTP error as one sentence; a page needing a login goes to the login form."""
        if exc.status_code == 401 and request.method == "GET" and not request.url.path.startswith("/api/"):
            return RedirectResponse("/login", status_code=303)
        sentence = exc.detail if isinstance(exc.detail, str) and exc.detail.endswith(".") else None
        fallback = {404: "There is no such page.", 405: "This address does not take that method."}
        return error(exc.status_code, sentence or fallback.get(exc.status_code, "The request was refused."))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        """A malformed request body or query as 400 with the first problem named."""
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
        return error(400, f"The request is malformed ({where}): {first.get('msg', 'invalid value').lower()}.")

    for kind, status in SENTENCE_STATUS.items():
        app.add_exception_handler(kind, sentence_handler(status))

    @app.exception_handler(duckdb.CatalogException)
    async def old_catalog(request: Request, exc: duckdb.CatalogException) -> Response:
        """A catalog written before the review views existed (503)."""
        return error(503, "The catalog lacks the review views; run 'breedwatch run' once to refresh it.")

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> Response:
        """The review page (a session is opened here when no login is needed)."""
        session, token = session_of(request), None
        if session is None and server.password is None:
            session = Session(authenticated=True, reviewer=server.reviewer)
            token = sessions.create(session)
        if session is None or not session.authenticated:
            return RedirectResponse("/login", status_code=303)
        first = request.query_params.get("item", "")[:400]
        html = pages.get_template("review.html.j2").render(csrf=session.csrf, reviewer=session.reviewer, first=first)
        response = HTMLResponse(html)
        return with_cookie(response, token) if token else response

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        """The login form, with a pre-login session whose CSRF token the form carries."""
        if server.password is None:
            return RedirectResponse("/", status_code=303)
        session, token = session_of(request), None
        if session is None:
            session = Session()
            token = sessions.create(session)
        html = pages.get_template("login.html.j2").render(csrf=session.csrf, failed=False)
        response = HTMLResponse(html)
        return with_cookie(response, token) if token else response

    @app.post("/login")
    async def login(request: Request) -> Response:
        """Check the password and the reviewer's name; a new session replaces the pre-login one."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "The login form is too large.")
        form = {name: values[0] for name, values in parse_qs(body.decode("utf-8", "replace")).items()}
        session = check_csrf(request, session_of(request), form.get("csrf_token"))
        if server.password is None:
            raise HTTPException(400, "This server needs no login.")
        reviewer = form.get("reviewer", "").strip()
        if not REVIEWER_NAME.match(reviewer):
            raise HTTPException(400, "Give your name (letters, digits, spaces, '.', '@' or '-', at most 64).")
        if not same_secret(form.get("password"), server.password):
            html = pages.get_template("login.html.j2").render(csrf=session.csrf, failed=True)
            return HTMLResponse(html, status_code=401)
        sessions.drop(request.cookies.get(SESSION_COOKIE))
        token = sessions.create(Session(authenticated=True, reviewer=reviewer))
        return with_cookie(RedirectResponse("/", status_code=303), token)

    @app.post("/logout")
    def logout(request: Request) -> Response:
        """End the session."""
        check_csrf(request, session_of(request), request.headers.get(CSRF_HEADER))
        sessions.drop(request.cookies.get(SESSION_COOKIE))
        return JSONResponse({"logged_out": True})

    @app.post("/api/next")
    def api_next(request: Request, body: QueueRequest) -> Response:
        """The next open item after the skipped ones."""
        session = posted(request)
        item = named_item(server, body.first) if body.first else next_item(server, body.skip)
        return JSONResponse({"item": item, "reviewer": session.reviewer})

    @app.post("/api/review")
    def api_review(request: Request, body: ReviewRequest) -> Response:
        """Record one key press on an item and answer with the next item."""
        session = posted(request)
        timing = {"seconds_spent": round(body.seconds_spent, 3), "keystrokes": body.keystrokes}
        row = review_tasks.record_review(
            server.home, body.key, body.action, session.reviewer, timing, today(), server.audit_share, body.box
        )
        saved = {name: row[name] for name in ("correction_id", "field", "machine_value", "human_value", "audit")}
        return JSONResponse({"saved": saved, "item": next_item(server, body.skip)})

    @app.post("/api/undo")
    def api_undo(request: Request) -> Response:
        """Undo this reviewer's latest correction (a new row) and show its item again."""
        session = posted(request)
        row = review_tasks.undo_last(server.home, session.reviewer)
        drop = "" if row["target_kind"] == "animal" else row["drop_id"]
        shown = named_item(server, f"{item_kind(row['target_kind'], row['field'])}:{drop}:{row['target_id']}")
        return JSONResponse({"undone": row["undoes"], "item": shown})

    @app.post("/api/explain")
    def api_explain(request: Request, body: ExplainRequest) -> Response:
        """Seed 001's guided Grad-CAM of a face item, computed on the first request (the first one loads torch)."""
        posted(request)
        key = parse_item_key(body.key)
        if key.kind != "face":
            raise ReviewError("Only a face has a guided Grad-CAM; this item is a " + key.kind + ".")
        relative = explain_face(server.home, key.drop_id, key.target_id)
        return JSONResponse({"image": "/files/" + quote(relative)})

    @app.post("/api/retrain")
    def api_retrain(request: Request, body: RetrainRequest) -> Response:
        """Start `breedwatch retrain KIND` as a process of its own (never training here) and answer at once with where
        to watch it; 409 while one runs."""
        posted(request)
        if body.kind not in RETRAIN_KINDS:
            raise ReviewError(
                f"Retraining {body.kind!r} is not offered here; choose one of {', '.join(RETRAIN_KINDS)}."
            )
        try:
            record = start_retrain(server.home, body.kind, server.config_file)
        except RetrainBusyError as busy:
            return error(409, str(busy))
        watch = (
            f"Retraining {body.kind} (process {record['pid']}): follow {record['log']} under the home; the result is "
            f"a new model version, promoted only when not worse (see 'breedwatch retrain --help')."
        )
        return JSONResponse({"started": record, "watch": watch}, status_code=202)

    @app.get("/files/{relative:path}")
    def files(request: Request, relative: str) -> Response:
        """A face crop or Grad-CAM image from inside the home, and nothing else."""
        logged_in(request)
        return FileResponse(review_tasks.home_file(server.home, relative))

    @app.get("/frames/{drop_id}/{media_id}")
    def frames(request: Request, drop_id: str, media_id: str) -> Response:
        """A whole frame from its drop folder, found by its ids in the catalog (never by a path from the request)."""
        logged_in(request)
        return FileResponse(review_tasks.frame_file(server.home, drop_id, media_id))

    @app.get("/static/review.js")
    def script() -> Response:
        """The page's own script (no CDN)."""
        return FileResponse(STATIC / "review.js", media_type="text/javascript")

    return app
