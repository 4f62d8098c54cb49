"""The public agreement calculator: JSON API and a page with CSV upload."""

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from app.calibration import agreement
from app.errors import Invalid, TooManyRequests
from app.security import CSRF_EXEMPT_PATHS, RateLimiter
from app.web import render

router = APIRouter()

MAX_BODY_BYTES = 1024 * 1024
MAX_CELLS = 200_000
calculator_limit = RateLimiter(limit=30, window_seconds=60)
CSRF_EXEMPT_PATHS.add("/api/agreement")  # stores nothing and acts for no one

Value = StrictInt | StrictFloat | StrictStr  # strict: JSON true/false are not categories


class AgreementRequest(BaseModel):
    """Ratings from anywhere (a spreadsheet, a form export) to analyse."""

    categories: list[Value] = Field(
        min_length=2, max_length=100, description="The scale, in order."
    )
    level: Literal["nominal", "ordinal", "interval"] = "ordinal"
    ratings: list[list[Value | None]] = Field(
        min_length=2,
        max_length=500,
        description="One list per rater: a value per unit, null when missing.",
    )
    raters: list[str] | None = Field(default=None, description="Optional rater names.")
    units: list[str] | None = Field(default=None, description="Optional unit names.")
    master: list[Value | None] | None = Field(
        default=None, description="Optional master score per unit."
    )
    resamples: int = Field(
        default=1000, ge=0, le=5000, description="Bootstrap resamples for alpha."
    )
    seed: int = Field(default=agreement.DEFAULT_SEED, description="Bootstrap seed (reproducible).")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limited(request: Request) -> None:
    wait = calculator_limit.check(_client(request))
    if wait is not None:
        raise TooManyRequests(
            f"The calculator takes at most {calculator_limit.limit} requests a minute from one "
            f"address. Try again in {wait} seconds.",
            retry_after=wait,
        )


def _analyse(req: AgreementRequest) -> dict[str, Any]:
    cells = len(req.ratings) * max((len(r) for r in req.ratings), default=0)
    if cells > MAX_CELLS:
        raise Invalid(
            f"At most {MAX_CELLS:,} ratings (raters x units) per request; this had {cells:,}."
        )
    try:
        return agreement.report(
            req.ratings,
            req.categories,
            req.level,
            raters=req.raters,
            units=req.units,
            master=req.master,
            resamples=req.resamples,
            seed=req.seed,
        )
    except agreement.AgreementInputError as exc:
        raise Invalid(str(exc), details=[{"field": "ratings", "message": str(exc)}]) from exc


@router.post("/api/agreement", tags=["agreement"])
async def calculate(request: Request) -> JSONResponse:
    """Inter-rater agreement for any ratings: exact and within-one agreement, Krippendorff's
    alpha with a bootstrap 95% interval, Fleiss' kappa, Gwet's AC1/AC2, pairwise Cohen's
    kappas, agreement with master scores, per-unit distributions. Nothing is stored."""
    _limited(request)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return JSONResponse(
            {"error": "Too large", "detail": f"Send at most {MAX_BODY_BYTES // 1024} KB."},
            status_code=413,
        )
    try:
        req = AgreementRequest.model_validate_json(body)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()[:10]
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
        raise Invalid(summary or "The request is not valid JSON.", details=details) from exc
    return JSONResponse(await run_in_threadpool(_analyse, req))


@router.get("/agreement", response_class=HTMLResponse)
def calculator_page(request: Request) -> Response:
    """The calculator with a CSV upload: one column per rater, one row per unit."""
    return render(
        request,
        "calibration/calculator.html",
        {"form": {"categories": "1, 2, 3, 4, 5", "level": "ordinal"}},
    )


@router.post("/agreement", response_class=HTMLResponse)
async def calculator_upload(
    request: Request,
    file: Annotated[UploadFile | None, File()] = None,
    categories: Annotated[str, Form(max_length=2000)] = "",
    level: Annotated[str, Form(max_length=20)] = "ordinal",
) -> Response:
    """Analyse an uploaded CSV and show the report."""
    _limited(request)
    form = {"categories": categories, "level": level}
    data = await file.read(MAX_BODY_BYTES + 1) if file is not None else b""
    try:
        req = _request_from_csv(data, categories, level)
        report = await run_in_threadpool(_analyse, req)
    except Invalid as exc:
        return render(
            request,
            "calibration/calculator.html",
            {"form": form, "problem": exc.message},
            status_code=422,
        )
    return render(request, "calibration/calculator.html", {"form": form, "report": report})


def _request_from_csv(data: bytes, categories_text: str, level: str) -> AgreementRequest:
    """Columns are raters; optional columns 'unit' (names) and 'master'. Empty cell = missing."""
    if not data:
        raise Invalid("Choose a CSV file: one column per rater, one row per unit.")
    if len(data) > MAX_BODY_BYTES:
        raise Invalid(f"The file is larger than {MAX_BODY_BYTES // 1024} KB.")
    if level not in ("nominal", "ordinal", "interval"):
        raise Invalid("Choose nominal, ordinal or interval.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("The file is not UTF-8 text. In Excel use 'Save as: CSV UTF-8'.") from exc
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise Invalid("The file needs a header row (rater names) and at least one unit.")
    header = [h.strip() for h in rows[0]]
    lowered = [h.lower() for h in header]
    unit_col = lowered.index("unit") if "unit" in lowered else None
    master_col = lowered.index("master") if "master" in lowered else None
    rater_cols = [i for i in range(len(header)) if i not in (unit_col, master_col)]
    parsed = [_parse_value(c.strip()) for c in categories_text.split(",") if c.strip()]
    by_text = {str(c): c for c in parsed}
    ratings: list[list[Value | None]] = [[] for _ in rater_cols]
    units: list[str] = []
    master: list[Value | None] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise Invalid(f"Row {line} has {len(row)} cells but the header has {len(header)}.")
        units.append(row[unit_col].strip() if unit_col is not None else f"Unit {line - 1}")
        for k, col in enumerate(rater_cols):
            ratings[k].append(_cell(row[col], by_text, line, header[col]))
        if master_col is not None:
            master.append(_cell(row[master_col], by_text, line, "master"))
    try:
        return AgreementRequest(
            categories=parsed,
            level=level,
            ratings=ratings,
            raters=[header[c] or f"Rater {i + 1}" for i, c in enumerate(rater_cols)],
            units=units,
            master=master if master_col is not None else None,
        )
    except ValidationError as exc:
        raise Invalid(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        ) from exc


def _parse_value(text: str) -> Value:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _cell(raw: str, by_text: dict[str, Value], line: int, column: str) -> Value | None:
    raw = raw.strip()
    if raw == "":
        return None
    value = by_text.get(raw, by_text.get(str(_parse_value(raw))))
    if value is None:
        raise Invalid(
            f"Row {line}, column '{column}': '{raw}' is not one of the categories "
            f"({', '.join(by_text)})."
        )
    return value
