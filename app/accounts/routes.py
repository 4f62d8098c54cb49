"""Sign-in, the home page and the admin pages for users, schools, teachers and the roster."""

from datetime import datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.accounts import service
from app.accounts.deps import AdminUser, CurrentUser, OptionalUser, end_session, start_session
from app.accounts.models import GRADES, Role, Teacher, User
from app.analytics import service as analytics
from app.db import Id, SessionDep, district_timezone, parse_id, utcnow
from app.errors import Invalid, TooManyRequests
from app.feedback import service as feedback
from app.web import page_url, render

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only same-site paths may follow a sign-in (no open redirects)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, user: OptionalUser, next: str = "/") -> Response:
    """The sign-in form."""
    if user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "accounts/login.html", {"next": _safe_next(next)})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the credentials and start a session."""
    ip = request.client.host if request.client else "unknown"
    context = {"next": _safe_next(next), "email": email}
    try:
        user = service.authenticate(
            session=session,
            settings=request.app.state.settings,
            email=email,
            password=password,
            ip=ip,
        )
    except TooManyRequests as exc:
        return render(
            request,
            "accounts/login.html",
            {**context, "error": exc.message},
            status_code=429,
        )
    if user is None:
        return render(
            request,
            "accounts/login.html",
            {**context, "error": "That email and password do not match an active account."},
            status_code=401,
        )
    start_session(request, session, user)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    """End this browser's session, on the server too."""
    end_session(request, session)
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """The signed-in home page, with what this role can do."""
    school = (
        service.get_school(session=session, school_id=user.school_id) if user.school_id else None
    )
    coverage = None
    if user.role == Role.principal and school is not None:
        # Their school's coverage at a glance: teachers visited in the district's window.
        weeks = request.app.state.settings.coverage_weeks
        tz = district_timezone(session)
        since_day = utcnow().astimezone(tz).date() - timedelta(weeks=weeks)
        since = datetime.combine(since_day, time.min, tzinfo=tz)
        found = analytics.coverage_by_school(
            session=session, user=user, since=since, school_id=school.id
        )
        coverage = {"weeks": weeks, "since": since_day, "school": found[0] if found else None}
    unopened = None
    if user.role in (Role.principal, Role.admin):
        # Feedback shared with teachers that nobody has opened after the district's N days.
        days = request.app.state.settings.feedback_unopened_days
        scope = school.id if user.role == Role.principal and school is not None else None
        if user.role == Role.admin or scope is not None:
            unopened = {
                "days": days,
                "shares": feedback.unopened(session, school_id=scope, days=days),
            }
    return render(
        request,
        "accounts/home.html",
        {
            "user": user,
            "school": school,
            "coverage": coverage,
            "unopened": unopened,
            "now": utcnow(),
        },
    )


# --- admin: users ---------------------------------------------------------------------------


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, admin: AdminUser, session: SessionDep) -> Response:
    """Users a page at a time (with a search), and a form to add one."""
    return _users_page(request, session)


def _users(request: Request, session: SessionDep) -> Any:
    return service.page_users(
        session=session,
        q=request.query_params.get("q", "")[:100],
        cursor=request.query_params.get("cursor"),
    )


def _users_page(
    request: Request,
    session: SessionDep,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "admin/users.html",
        {
            "page": (page := _users(request, session)),
            "users": page.items,
            "page_url": page_url(request),
            "q": request.query_params.get("q", "")[:100],
            "schools": {s.id: s for s in service.list_schools(session=session)},
            "roles": list(Role),
            "form": form or {},
            "errors": errors or {},
            "notice": notice,
        },
        status_code=status_code,
    )


@router.post("/admin/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    school_id: Annotated[str, Form(max_length=20)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Add a user; on errors the form comes back filled in with each error by its field."""
    form = {"email": email, "name": name, "role": role, "school_id": school_id}
    try:
        user = service.create_user(
            session=session,
            email=email,
            name=name,
            role=role,
            school_id=parse_id(school_id),
            password=password,
        )
    except Invalid as exc:
        errors = {str(d["field"]): str(d["message"]) for d in exc.details}
        return _users_page(request, session, form=form, errors=errors, status_code=422)
    return _users_page(request, session, notice=f"Added {user.name} ({user.role.label}).")


@router.post("/admin/users/{user_id}/active", response_class=HTMLResponse)
def set_user_active(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    user_id: Id,
    active: Annotated[str, Form(pattern="^(true|false)$")],
) -> Response:
    """Deactivate or reactivate a user."""
    user = service.get_user(session=session, user_id=user_id)
    service.set_active(session=session, admin=admin, user=user, active=active == "true")
    verb = "Reactivated" if user.active else "Deactivated"
    return _users_page(request, session, notice=f"{verb} {user.name}.")


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def edit_user_page(
    request: Request, admin: AdminUser, session: SessionDep, user_id: Id
) -> Response:
    """One user's name, e-mail, role and school, to change."""
    user = service.get_user(session=session, user_id=user_id)
    form = {
        "name": user.name,
        "email": user.email,
        "role": user.role.value,
        "school_id": str(user.school_id or ""),
    }
    return _edit_user_page(request, session, user, form, {})


def _edit_user_page(
    request: Request,
    session: SessionDep,
    user: User,
    form: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "admin/user.html",
        {
            "u": user,
            "form": form,
            "errors": errors,
            "roles": list(Role),
            "schools": service.list_schools(session=session),
        },
        status_code=status_code,
    )


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
def update_user(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    user_id: Id,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    school_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Save a user's details; on errors the form comes back filled in, each error by its field."""
    user = service.get_user(session=session, user_id=user_id)
    form = {"email": email, "name": name, "role": role, "school_id": school_id}
    try:
        service.update_user(
            session=session,
            admin=admin,
            user=user,
            email=email,
            name=name,
            role=role,
            school_id=parse_id(school_id),
        )
    except Invalid as exc:
        errors = {str(d["field"]): str(d["message"]) for d in exc.details}
        return _edit_user_page(request, session, user, form, errors, status_code=422)
    return _users_page(request, session, notice=f"Saved {user.name} ({user.role.label}).")


@router.post("/admin/users/{user_id}/password", response_class=HTMLResponse)
def reset_password(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    user_id: Id,
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Set a new password for a user (ending their sessions)."""
    user = service.get_user(session=session, user_id=user_id)
    try:
        service.reset_password(session=session, user=user, password=password)
    except Invalid as exc:
        return _users_page(
            request,
            session,
            errors={f"password-{user.id}": str(exc.details[0]["message"])},
            status_code=422,
        )
    return _users_page(request, session, notice=f"New password set for {user.name}.")


# --- admin: schools, teachers, roster ------------------------------------------------------------


@router.get("/admin/schools", response_class=HTMLResponse)
def schools_page(request: Request, admin: AdminUser, session: SessionDep) -> Response:
    """Every school, with a form to add one."""
    return _schools_page(request, session)


def _schools_page(
    request: Request,
    session: SessionDep,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    schools = service.list_schools(session=session)
    counts = service.teacher_counts(session=session)
    return render(
        request,
        "admin/schools.html",
        {
            "schools": schools,
            "counts": counts,
            "form": form or {},
            "errors": errors or {},
            "notice": notice,
        },
        status_code=status_code,
    )


@router.post("/admin/schools", response_class=HTMLResponse)
def create_school(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    name: Annotated[str, Form(max_length=200)] = "",
    code: Annotated[str, Form(max_length=50)] = "",
) -> Response:
    """Add a school."""
    try:
        school = service.create_school(session=session, name=name, code=code)
    except Invalid as exc:
        errors = {str(d["field"]): str(d["message"]) for d in exc.details}
        return _schools_page(
            request, session, form={"name": name, "code": code}, errors=errors, status_code=422
        )
    return _schools_page(request, session, notice=f"Added {school.name}.")


@router.get("/admin/teachers", response_class=HTMLResponse)
def teachers_page(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    school_id: str = "",
    q: str = "",
) -> Response:
    """The teacher roster, filtered by school or a search; the list is an htmx block."""
    school = parse_id(school_id)  # "" means all schools
    page = service.page_teachers(
        session=session, school_id=school, q=q[:100], cursor=request.query_params.get("cursor")
    )
    return render(
        request,
        "admin/teachers.html",
        {
            "page": page,
            "teachers": page.items,
            "page_url": page_url(request),
            "schools": service.list_schools(session=session),
            "school_id": school,
            "q": q,
            "columns": service.ROSTER_COLUMNS,
        },
        block="teacher_list",
    )


def _teacher_page(
    request: Request,
    session: SessionDep,
    teacher: Teacher | None,
    form: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "admin/teacher.html",
        {
            "t": teacher,
            "form": form,
            "errors": errors,
            "schools": service.list_schools(session=session),
        },
        status_code=status_code,
    )


@router.get("/admin/teachers/new", response_class=HTMLResponse)
def new_teacher_page(request: Request, admin: AdminUser, session: SessionDep) -> Response:
    """Add one teacher without a roster file."""
    return _teacher_page(request, session, None, {"active": "true"}, {})


@router.get("/admin/teachers/{teacher_id}", response_class=HTMLResponse)
def edit_teacher_page(
    request: Request, admin: AdminUser, session: SessionDep, teacher_id: Id
) -> Response:
    """One teacher's name, school, grades, staff id and whether they are on the roster."""
    t = service.get_teacher(session=session, teacher_id=teacher_id)
    form = {
        "name": t.name,
        "school_id": str(t.school_id),
        "grades": ", ".join(t.grade_list),
        "district_id": t.district_id or "",
        "active": "true" if t.active else "false",
    }
    return _teacher_page(request, session, t, form, {})


TeacherName = Annotated[str, Form(max_length=200)]
ShortField = Annotated[str, Form(max_length=200)]


@router.post("/admin/teachers", response_class=HTMLResponse)
def create_teacher(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    name: TeacherName = "",
    school_id: ShortField = "",
    grades: ShortField = "",
    district_id: ShortField = "",
    active: ShortField = "true",
) -> Response:
    """Add a teacher; errors come back by their field with the form filled in."""
    form = {"name": name, "school_id": school_id, "grades": grades}
    return _save_teacher(
        request, session, None, {**form, "district_id": district_id, "active": active}
    )


@router.post("/admin/teachers/{teacher_id}", response_class=HTMLResponse)
def update_teacher(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    teacher_id: Id,
    name: TeacherName = "",
    school_id: ShortField = "",
    grades: ShortField = "",
    district_id: ShortField = "",
    active: ShortField = "true",
) -> Response:
    """Save a teacher; errors come back by their field with the form filled in."""
    teacher = service.get_teacher(session=session, teacher_id=teacher_id)
    form = {"name": name, "school_id": school_id, "grades": grades}
    return _save_teacher(
        request, session, teacher, {**form, "district_id": district_id, "active": active}
    )


def _save_teacher(
    request: Request, session: SessionDep, teacher: Teacher | None, form: dict[str, str]
) -> Response:
    try:
        saved = service.save_teacher(
            session=session,
            teacher=teacher,
            name=form["name"],
            school_id=parse_id(form["school_id"]),
            grades=form["grades"],
            district_id=form["district_id"],
            active=form["active"] != "false",
        )
    except Invalid as exc:
        errors = {str(d["field"]): str(d["message"]) for d in exc.details}
        return _teacher_page(request, session, teacher, form, errors, status_code=422)
    return RedirectResponse(f"/admin/teachers?q={quote(saved.name)}", status_code=303)


@router.get("/admin/roster", response_class=HTMLResponse)
def roster_page(request: Request, admin: AdminUser) -> Response:
    """The roster import form with the documented columns."""
    return render(
        request, "admin/roster.html", {"columns": service.ROSTER_COLUMNS, "grades": GRADES}
    )


@router.get("/admin/roster/template.csv")
def roster_template(admin: AdminUser) -> Response:
    """An example roster file with every column."""
    body = (
        "school,school_code,teacher,district_id,grades\r\n"
        "Lincoln Elementary,LIN,Ana García,T1001,K;1\r\n"
        "Lincoln Elementary,LIN,Sam Okafor,T1002,3-5\r\n"
    )
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="roster-template.csv"'},
    )


@router.post("/admin/roster", response_class=HTMLResponse)
async def import_roster(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Import a roster CSV: every bad row is reported and nothing is imported until it is clean."""
    limit = request.app.state.settings.max_upload_bytes
    data = await file.read(limit + 1) if file is not None else b""
    context: dict[str, object] = {"columns": service.ROSTER_COLUMNS, "grades": GRADES}
    if file is None or not file.filename:
        context["problem"] = "Choose a CSV file to import."
        return render(request, "admin/roster.html", context, status_code=422)
    if len(data) > limit:
        context["problem"] = f"The file is larger than {limit // 1024} KB."
        return render(request, "admin/roster.html", context, status_code=413)
    # Off the event loop: a large roster must not stall every other request meanwhile.
    report = await run_in_threadpool(service.import_roster, session=session, data=data)
    context.update({"report": report, "filename": file.filename})
    return render(request, "admin/roster.html", context, status_code=200 if report.ok else 422)


# --- personal API tokens -----------------------------------------------------------------------


@router.get("/account/password", response_class=HTMLResponse)
def password_page(request: Request, user: CurrentUser) -> Response:
    """Change your own password (you need the current one)."""
    return render(request, "accounts/password.html", {"errors": {}, "done": False})


@router.post("/account/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    current: Annotated[str, Form(max_length=1024)] = "",
    new: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Set a new password; every other sign-in of yours ends, this one goes on."""
    try:
        service.change_own_password(session=session, user=user, current=current, new=new)
    except Invalid as exc:
        errors = {str(d["field"]): str(d["message"]) for d in exc.details}
        return render(
            request, "accounts/password.html", {"errors": errors, "done": False}, status_code=422
        )
    start_session(request, session, user)
    return render(request, "accounts/password.html", {"errors": {}, "done": True})


@router.get("/account/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Your personal API tokens, for scripts (R, pandas, a sync client)."""
    return render(
        request, "accounts/tokens.html", {"tokens": service.list_tokens(session=session, user=user)}
    )


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Create a token and show it once."""
    try:
        raw, token = service.create_token(session=session, user=user, name=name)
    except Invalid as exc:
        return render(
            request,
            "accounts/tokens.html",
            {
                "tokens": service.list_tokens(session=session, user=user),
                "error": exc.details[0]["message"],
            },
            status_code=422,
        )
    return render(
        request,
        "accounts/tokens.html",
        {
            "tokens": service.list_tokens(session=session, user=user),
            "new_token": raw,
            "new_name": token.name,
        },
    )


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(user: CurrentUser, session: SessionDep, token_id: Id) -> Response:
    """Revoke a token at once."""
    service.revoke_token(session=session, user=user, token_id=token_id)
    return RedirectResponse("/account/tokens", status_code=303)
