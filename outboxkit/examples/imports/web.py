"""The imports web app (Starlette): the page, a demo session, the job list for page loads, uploads.

- `GET /`: the page (plain HTML and JavaScript in static/).
- `GET /api/session?user=NAME`: a gateway token for NAME and the gateway's address. A demo login:
  a real app issues the token to the user its own login established.
- `GET /api/jobs?user=NAME`: NAME's jobs from the status projection, each with its version, and the
  projection's positions (per partition, the next offset not applied): the page subscribes from
  those, so no event falls between the load and the subscription (docs/gateway.md).
- `POST /api/imports?user=NAME` with the CSV as the body (`X-File-Name` names it): the job row and
  `import.requested` in one transaction; 201 with the job, or 400 saying what is wrong with the file.

Run it with `python -m outboxkit.examples.imports.web` (OUTBOX_DATABASE_URL, OUTBOX_GATEWAY_SECRET,
IMPORTS_GATEWAY_URL, IMPORTS_PORT, IMPORTS_PREFIX).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from outboxkit.examples.imports.flow import Flow
from outboxkit.examples.imports.tables import job_status
from outboxkit.examples.imports.uploads import UploadRefusedError, request_import
from outboxkit.gateway import issue_token
from projectors.tracking import OffsetStore

STATIC = Path(__file__).parent / "static"
USER = re.compile(r"[a-z0-9_-]{1,40}")
MAX_UPLOAD = 5 * 1024 * 1024


def create_app(engine: Engine, flow: Flow, secret: str, gateway_url: str) -> Starlette:
    positions_of = OffsetStore(flow.name("job-status"))

    def user_of(request: Request) -> str:
        user = request.query_params.get("user", "")
        if not USER.fullmatch(user):
            raise UploadRefusedError("name a user: ?user= with 1-40 lower-case letters, digits, - or _")
        return user

    async def page(_: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def session(request: Request) -> Response:
        user = user_of(request)
        return JSONResponse(
            {"user": user, "token": issue_token(secret, user, ttl=3600), "gateway": gateway_url}
        )

    def load(user: str) -> dict[str, Any]:
        # One snapshot (REPEATABLE READ): the rows are exactly what the positions say was applied.
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            positions = positions_of.all(conn)
            rows = conn.execute(
                sa.select(job_status).where(job_status.c.user_id == user).order_by(job_status.c.job_id)
            ).mappings()
            jobs = [
                {
                    "job_id": r["job_id"],
                    "file_name": r["file_name"],
                    "status": r["status"],
                    "imported": r["imported"],
                    "total": r["total"],
                    "error": r["error"],
                    "version": {"partition": r["source_partition"], "offset": r["source_offset"]},
                }
                for r in rows
            ]
        return {"jobs": jobs, "positions": [[t, p, n] for (t, p), n in sorted(positions.items())]}

    async def job_list(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(load, user_of(request)))

    def store(user: str, file_name: str, text: str) -> dict[str, object]:
        with engine.begin() as conn:
            return request_import(conn, flow, user, file_name, text)

    async def upload(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_UPLOAD:
            raise UploadRefusedError(f"the file has {len(body)} bytes; at most {MAX_UPLOAD} are taken")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise UploadRefusedError(f"the file is not UTF-8 text: {err}") from err
        name = request.headers.get("x-file-name", "contacts.csv")[:200]
        job = await run_in_threadpool(store, user_of(request), name, text)
        return JSONResponse(job, status_code=201)

    async def refused(_: Request, err: Exception) -> Response:
        return JSONResponse({"error": str(err)}, status_code=400)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/session", session),
            Route("/api/jobs", job_list),
            Route("/api/imports", upload, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={UploadRefusedError: refused},
    )


def main() -> None:
    from outboxkit.examples.imports.tables import metadata
    from outboxkit.ops import logs
    from outboxkit.ops.asgi import run_asgi
    from projectors.database import engine_for

    flow = Flow.from_env()
    engine = engine_for(os.environ["OUTBOX_DATABASE_URL"])
    metadata.create_all(engine)  # the example services' own tables
    logs.configure("INFO")
    app = create_app(
        engine,
        flow,
        os.environ["OUTBOX_GATEWAY_SECRET"],
        os.environ.get("IMPORTS_GATEWAY_URL", "ws://127.0.0.1:8070/ws"),
    )
    run_asgi(app, "127.0.0.1", int(os.environ.get("IMPORTS_PORT", "8071")))


if __name__ == "__main__":
    main()
