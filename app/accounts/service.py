"""Accounts: sign-in with throttling, user administration, schools and the roster import."""

import csv
import hashlib
import io
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from email.headerregistry import Address
from typing import Any

from sqlalchemy import delete, func, insert, literal, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.accounts.models import (
    GRADES,
    ROLES_WITH_SCHOOL,
    ApiToken,
    LoginFailure,
    Role,
    School,
    Teacher,
    User,
)
from app.config import Settings
from app.db import PAGE_SIZE, Page, contains, cursor_id, next_seq, paginate, utcnow
from app.errors import Conflict, Invalid, NotFound, TooManyRequests
from app.security import hash_password, verify_password

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def valid_email_address(text: str) -> str | None:
    """The address if it is one plain e-mail address (no name, no list, no brackets), as a
    mail server takes it in a To: header; else None."""
    address = text.strip()
    if not address or len(address) > 254 or any(c in address for c in ',;<>[]()"\\ \t\r\n'):
        return None
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, AttributeError, TypeError):
        return None
    if not parsed.username or "." not in parsed.domain or parsed.addr_spec != address:
        return None
    return address


MIN_PASSWORD_LENGTH = 10


# --- sign-in -------------------------------------------------------------------------------


def authenticate(
    *, session: Session, settings: Settings, email: str, password: str, ip: str
) -> User | None:
    """The active user with this email and password, or None; refuses while throttled."""
    email = email.strip().lower()
    _check_throttle(session=session, settings=settings, email=email, ip=ip)
    user = session.exec(select(User).where(User.email == email)).first()
    ok, new_hash = verify_password(password, user.password_hash) if user else (False, None)
    if user is None or not ok or not user.active:
        session.add(LoginFailure(email=email, ip=ip))
        session.flush()
        return None
    if new_hash:
        user.password_hash = new_hash
    user.last_login_at = utcnow()
    session.exec(delete(LoginFailure).where(col(LoginFailure.email) == email))
    session.add(user)
    session.flush()
    return user


def _check_throttle(*, session: Session, settings: Settings, email: str, ip: str) -> None:
    since = utcnow() - timedelta(seconds=settings.login_window_seconds)
    recent = select(func.count()).select_from(LoginFailure).where(LoginFailure.failed_at >= since)
    by_email = session.exec(recent.where(LoginFailure.email == email)).one()
    by_ip = session.exec(recent.where(LoginFailure.ip == ip)).one()
    if by_email >= settings.login_max_failures or by_ip >= settings.login_max_failures_per_ip:
        minutes = max(1, settings.login_window_seconds // 60)
        raise TooManyRequests(
            f"Too many failed sign-ins. Wait {minutes} minutes and try again, "
            "or ask your district admin to reset your password.",
            retry_after=settings.login_window_seconds,
        )


# --- users ---------------------------------------------------------------------------------


def list_users(*, session: Session) -> list[User]:
    """Every user, active first, by name."""
    return list(session.exec(select(User).order_by(col(User.active).desc(), col(User.name))))


def get_user(*, session: Session, user_id: int) -> User:
    """One user, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def create_user(
    *,
    session: Session,
    email: str,
    name: str,
    role: str,
    school_id: int | None,
    password: str,
) -> User:
    """Create a user after checking every field; errors name the field."""
    errors: list[dict[str, str]] = []
    email = email.strip().lower()
    name = name.strip()
    if not EMAIL_RE.match(email):
        errors.append(
            {"field": "email", "message": "Enter an email address like name@district.org."}
        )
    elif session.exec(select(User).where(User.email == email)).first():
        errors.append({"field": "email", "message": "A user with this email already exists."})
    if not name:
        errors.append({"field": "name", "message": "Enter the person's name."})
    try:
        parsed_role = Role(role)
    except ValueError:
        errors.append({"field": "role", "message": "Choose one of the listed roles."})
        parsed_role = Role.observer
    if parsed_role in ROLES_WITH_SCHOOL:
        if school_id is None:
            errors.append(
                {"field": "school_id", "message": "Observers and principals need a school."}
            )
        elif session.get(School, school_id) is None:
            errors.append({"field": "school_id", "message": "Choose one of the listed schools."})
    else:
        school_id = None
    errors.extend(_password_errors(password))
    if errors:
        raise Invalid("The user was not created.", details=errors)
    user = User(
        email=email,
        name=name,
        role=parsed_role,
        school_id=school_id,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    return user


def _password_errors(password: str) -> list[dict[str, str]]:
    if len(password) < MIN_PASSWORD_LENGTH:
        return [
            {
                "field": "password",
                "message": f"Use at least {MIN_PASSWORD_LENGTH} characters.",
            }
        ]
    return []


def set_active(*, session: Session, admin: User, user: User, active: bool) -> User:
    """Deactivate (signing the user out everywhere) or reactivate a user. Admins cannot
    deactivate themselves, and the district keeps at least one active admin."""
    if not active and user.id == admin.id:
        raise Conflict("You cannot deactivate your own account: another admin can.")
    if not active and user.role == Role.admin and user.active and _active_admins(session) <= 1:
        raise Conflict("This is the district's only active admin: make another admin first.")
    user.active = active
    user.renew_stamp()
    session.add(user)
    session.flush()
    return user


def reset_password(*, session: Session, user: User, password: str) -> User:
    """Give the user a new password and end their existing sessions."""
    errors = _password_errors(password)
    if errors:
        raise Invalid("The password was not changed.", details=errors)
    user.password_hash = hash_password(password)
    user.renew_stamp()
    session.add(user)
    session.exec(delete(LoginFailure).where(col(LoginFailure.email) == user.email))
    session.flush()
    return user


def _active_admins(session: Session) -> int:
    return int(
        session.execute(
            sa_select(func.count())
            .select_from(User)
            .where(col(User.role) == Role.admin, col(User.active).is_(True))
        ).scalar_one()
    )


def update_user(
    *,
    session: Session,
    admin: User,
    user: User,
    email: str,
    name: str,
    role: str,
    school_id: int | None,
) -> User:
    """Change a user's name, e-mail, role and school; errors name the field. The district
    always keeps an active admin: the last one cannot be given another role."""
    errors: list[dict[str, str]] = []
    email = email.strip().lower()
    name = name.strip()[:200]
    if not EMAIL_RE.match(email):
        errors.append(
            {"field": "email", "message": "Enter an email address like name@district.org."}
        )
    elif (
        other := session.exec(select(User).where(User.email == email)).first()
    ) is not None and other.id != user.id:
        errors.append({"field": "email", "message": "Another user has this email."})
    if not name:
        errors.append({"field": "name", "message": "Enter the person's name."})
    try:
        parsed_role = Role(role)
    except ValueError:
        errors.append({"field": "role", "message": "Choose one of the listed roles."})
        parsed_role = user.role
    if parsed_role in ROLES_WITH_SCHOOL:
        if school_id is None:
            errors.append(
                {"field": "school_id", "message": "Observers and principals need a school."}
            )
        elif session.get(School, school_id) is None:
            errors.append({"field": "school_id", "message": "Choose one of the listed schools."})
    else:
        school_id = None
    if (
        user.role == Role.admin
        and parsed_role != Role.admin
        and user.active
        and _active_admins(session) <= 1
    ):
        errors.append(
            {
                "field": "role",
                "message": "This is the district's only active admin: make another admin first.",
            }
        )
    if errors:
        raise Invalid("The user was not changed.", details=errors)
    user.email, user.name, user.role, user.school_id = email, name, parsed_role, school_id
    session.add(user)
    session.flush()
    return user


def change_own_password(*, session: Session, user: User, current: str, new: str) -> User:
    """A person changes their own password, with their current one; their other sessions
    end (the caller starts a fresh one for this browser)."""
    ok, _rehash = verify_password(current, user.password_hash)
    errors = [] if ok else [{"field": "current", "message": "That is not your current password."}]
    errors.extend({**e, "field": "new"} for e in _password_errors(new))
    if ok and new == current:
        errors.append({"field": "new", "message": "Choose a password you have not been using."})
    if errors:
        raise Invalid("Your password was not changed.", details=errors)
    return reset_password(session=session, user=user, password=new)


# --- schools and teachers --------------------------------------------------------------------


def list_schools(*, session: Session) -> list[School]:
    """Every school by name."""
    return list(session.exec(select(School).order_by(col(School.name))))


def create_school(*, session: Session, name: str, code: str | None) -> School:
    """Add a school; name and code must be unique."""
    name = name.strip()
    code = (code or "").strip() or None
    errors: list[dict[str, str]] = []
    if not name:
        errors.append({"field": "name", "message": "Enter the school's name."})
    elif session.exec(select(School).where(School.name == name)).first():
        errors.append({"field": "name", "message": "A school with this name already exists."})
    if code and session.exec(select(School).where(School.code == code)).first():
        errors.append({"field": "code", "message": "Another school already has this code."})
    if errors:
        raise Invalid("The school was not added.", details=errors)
    school = School(name=name, code=code)
    session.add(school)
    session.flush()
    return school


def _teachers(school_id: int | None, q: str, active_only: bool = False) -> Any:
    stmt = select(Teacher)
    if school_id is not None:
        stmt = stmt.where(Teacher.school_id == school_id)
    if active_only:
        stmt = stmt.where(col(Teacher.active))
    if q.strip():
        stmt = stmt.where(
            or_(
                contains(col(Teacher.name), q.strip()),
                contains(col(Teacher.district_id), q.strip()),
            )
        )
    return stmt


def list_teachers(*, session: Session, school_id: int | None = None, q: str = "") -> list[Teacher]:
    """Teachers by school and name, optionally of one school or matching a search (for a
    school's roster; a district's is read a page at a time with page_teachers)."""
    stmt = _teachers(school_id, q).order_by(col(Teacher.school_id), col(Teacher.name))
    return list(session.exec(stmt))


def page_teachers(
    *,
    session: Session,
    school_id: int | None = None,
    q: str = "",
    cursor: str | None = None,
    active_only: bool = False,
    size: int = PAGE_SIZE,
) -> Page[Teacher]:
    """Teachers by name, a page at a time with the true total, of one school or matching a
    search by name or district id."""
    return paginate(
        session,
        _teachers(school_id, q, active_only),
        order=[col(Teacher.name), col(Teacher.id)],
        descending=False,
        key=lambda t: (t.name, t.id),
        parsers=[str, cursor_id],
        cursor=cursor,
        size=size,
    )


def teachers_named(*, session: Session, name: str, school_id: int | None) -> list[Teacher]:
    """Active teachers with exactly this name (any case), of one school or of every school."""
    wanted = func.lower(literal(name.strip()))  # folded by the database, as the column is
    stmt = select(Teacher).where(col(Teacher.active), func.lower(col(Teacher.name)) == wanted)
    if school_id is not None:
        stmt = stmt.where(Teacher.school_id == school_id)
    return list(session.exec(stmt.limit(50)))


def page_users(*, session: Session, q: str = "", cursor: str | None = None) -> Page[User]:
    """Users by name, a page at a time with the true total, matching a search by name or
    e-mail."""
    stmt = select(User)
    if q.strip():
        stmt = stmt.where(
            or_(contains(col(User.name), q.strip()), contains(col(User.email), q.strip()))
        )
    return paginate(
        session,
        stmt,
        order=[col(User.name), col(User.id)],
        descending=False,
        key=lambda u: (u.name, u.id),
        parsers=[str, cursor_id],
        cursor=cursor,
    )


def save_teacher(
    *,
    session: Session,
    teacher: Teacher | None,
    name: str,
    school_id: int | None,
    grades: str,
    district_id: str,
    active: bool = True,
) -> Teacher:
    """Add one teacher (teacher None) or change one, without a roster file; errors name
    the field. Like a roster import, the change reaches devices on their next sync."""
    errors: list[dict[str, str]] = []
    name = " ".join(name.split())[:200]
    district = district_id.strip()[:100] or None
    if not name:
        errors.append({"field": "name", "message": "Enter the teacher's name."})
    if school_id is None or session.get(School, school_id) is None:
        errors.append({"field": "school_id", "message": "Choose one of the listed schools."})
    try:
        grade_list = parse_grades(grades)
    except ValueError as exc:
        errors.append({"field": "grades", "message": f"{exc}."})
        grade_list = []
    if district is not None:
        other = session.exec(select(Teacher).where(Teacher.district_id == district)).first()
        if other is not None and (teacher is None or other.id != teacher.id):
            errors.append(
                {"field": "district_id", "message": f"{other.name} already has this staff id."}
            )
    if errors:
        raise Invalid("The teacher was not saved.", details=errors)
    assert school_id is not None
    teacher = teacher or Teacher(name=name, school_id=school_id)
    teacher.name, teacher.school_id, teacher.grades = name, school_id, ",".join(grade_list)
    teacher.district_id, teacher.active = district, active
    teacher.updated_at, teacher.change_seq = utcnow(), next_seq(session)
    session.add(teacher)
    session.flush()
    return teacher


def get_teacher(*, session: Session, teacher_id: int) -> Teacher:
    """One teacher, or NotFound."""
    teacher = session.get(Teacher, teacher_id)
    if teacher is None:
        raise NotFound("No such teacher.")
    return teacher


def parse_grades(raw: str) -> list[str]:
    """Grades from 'K;1;2', '3-5' or 'K, 1' in roster order; raises ValueError naming a bad one."""
    grades: set[str] = set()
    for token in re.split(r"[;,\s]+", raw.strip()):
        if not token:
            continue
        token = token.upper()
        if "-" in token:
            start, _, end = token.partition("-")
            if start not in GRADES or end not in GRADES or GRADES.index(start) > GRADES.index(end):
                raise ValueError(f"'{token}' is not a grade range like 3-5")
            grades.update(GRADES[GRADES.index(start) : GRADES.index(end) + 1])
        elif token in GRADES:
            grades.add(token)
        else:
            raise ValueError(f"'{token}' is not a grade; use PK, K or 1 to 12")
    return [g for g in GRADES if g in grades]


# --- roster import -----------------------------------------------------------------------------

ROSTER_COLUMNS = {
    "school": "School name (required).",
    "school_code": "Short school code (optional; must be the same on every row of a school).",
    "teacher": "Teacher's full name (required).",
    "district_id": "The district's staff id (optional; unique; used to match on re-import).",
    "grades": "Grades taught, e.g. 'K;1' or '3-5' (optional).",
    "email": "The teacher's e-mail address, where feedback links are sent (optional).",
}
REQUIRED_ROSTER_COLUMNS = ("school", "teacher")


@dataclass
class RosterRow:
    """One clean row of a roster file."""

    row: int
    school: str
    school_code: str | None
    teacher: str
    district_id: str | None
    grades: list[str]
    # None: the file has no email column (addresses already on the roster stay).
    email: str | None = None


@dataclass
class RosterReport:
    """What an import found or did."""

    errors: list[dict[str, object]] = field(default_factory=list)
    schools_created: int = 0
    teachers_created: int = 0
    teachers_updated: int = 0
    teachers_unchanged: int = 0

    @property
    def ok(self) -> bool:
        """True when the file had no errors (and so was imported)."""
        return not self.errors


def import_roster(*, session: Session, data: bytes) -> RosterReport:
    """Import schools and teachers from CSV: all rows or, if any row is bad, none.

    Set-based: the roster is read once and written with one insert and one update
    statement, so a 10,000-row file takes a moment, not a minute."""
    report = RosterReport()
    rows = _parse_roster(data, report)
    if rows is not None:
        _check_roster_against_db(session, rows, report)
    if report.errors or rows is None:
        return report
    schools = {s.name: s for s in session.exec(select(School))}
    for r in rows:
        school = schools.get(r.school)
        if school is None:
            school = School(name=r.school, code=r.school_code)
            schools[r.school] = school
            report.schools_created += 1
        elif r.school_code and school.code != r.school_code:
            school.code = r.school_code
        session.add(school)
    session.flush()

    current = session.execute(
        sa_select(
            col(Teacher.id),
            col(Teacher.name),
            col(Teacher.school_id),
            col(Teacher.grades),
            col(Teacher.district_id),
            col(Teacher.active),
            col(Teacher.email),
        ).order_by(col(Teacher.id))
    ).all()
    by_district = {t.district_id: t for t in current if t.district_id}
    by_name: dict[tuple[str, int], Any] = {}
    for t in current:
        if t.district_id is None:
            by_name.setdefault((t.name, t.school_id), t)
    claimed: set[int] = set()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    seq, now = next_seq(session), utcnow()
    for r in rows:
        school_id = schools[r.school].id
        assert school_id is not None
        grades = ",".join(r.grades)
        teacher = by_district.get(r.district_id) if r.district_id else None
        if teacher is None:
            teacher = by_name.get((r.teacher, school_id))
        if teacher is None or teacher.id in claimed:
            inserts.append(
                {
                    "name": r.teacher,
                    "school_id": school_id,
                    "grades": grades,
                    "district_id": r.district_id,
                    "email": r.email or None,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                    "change_seq": seq,
                }
            )
            continue
        claimed.add(teacher.id)
        email = teacher.email if r.email is None else (r.email or None)
        wanted = (r.teacher, school_id, grades, r.district_id, True, email)
        if wanted == (
            teacher.name,
            teacher.school_id,
            teacher.grades,
            teacher.district_id,
            teacher.active,
            teacher.email,
        ):
            report.teachers_unchanged += 1
            continue
        updates.append(
            {
                "id": teacher.id,
                "name": r.teacher,
                "school_id": school_id,
                "grades": grades,
                "district_id": r.district_id,
                "email": email,
                "active": True,
                "updated_at": now,
                "change_seq": seq,
            }
        )
    if updates:
        session.execute(update(Teacher), updates)
    if inserts:
        session.execute(insert(Teacher), inserts)
    report.teachers_created, report.teachers_updated = len(inserts), len(updates)
    session.flush()
    return report


def _parse_roster(data: bytes, report: RosterReport) -> list[RosterRow] | None:
    def error(row: int, column: str, message: str) -> None:
        report.errors.append({"row": row, "column": column, "message": message})

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        error(1, "", "The file is not UTF-8 text. In Excel use 'Save as: CSV UTF-8'.")
        return None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        error(1, "", "The file is empty. The first row must name the columns.")
        return None
    except csv.Error as exc:
        error(1, "", f"The file is not valid CSV: {exc}.")
        return None
    for name in header:
        if name not in ROSTER_COLUMNS:
            error(1, name, f"Unknown column '{name}'. Columns: {', '.join(ROSTER_COLUMNS)}.")
    for name in REQUIRED_ROSTER_COLUMNS:
        if name not in header:
            error(1, name, f"The required column '{name}' is missing from the first row.")
    if len(set(header)) != len(header):
        error(1, "", "A column name appears twice in the first row.")
    if report.errors:
        return None

    rows: list[RosterRow] = []
    seen_ids: dict[str, int] = {}
    school_codes: dict[str, tuple[str, int]] = {}
    code_owner: dict[str, tuple[str, int]] = {}
    seen_teachers: dict[tuple[str, str], int] = {}
    try:
        records = list(enumerate(reader, start=2))
    except csv.Error as exc:
        error(reader.line_num, "", f"The file is not valid CSV: {exc}.")
        return None
    for row_no, values in records:
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            error(row_no, "", f"Expected {len(header)} cells but found {len(values)}.")
            continue
        cells = {h: v.strip() for h, v in zip(header, values, strict=True)}
        nul = [h for h, v in cells.items() if "\x00" in v]
        if nul:
            error(row_no, nul[0], "The cell contains a NUL character; re-save the file as CSV.")
            continue
        school, teacher = cells.get("school", ""), cells.get("teacher", "")
        code = cells.get("school_code") or None
        district_id = cells.get("district_id") or None
        for column, value in (("school", school), ("teacher", teacher)):
            if not value:
                error(row_no, column, f"The {column} name is empty.")
            elif len(value) > 200:
                error(row_no, column, f"The {column} name is longer than 200 characters.")
        try:
            grades = parse_grades(cells.get("grades", ""))
        except ValueError as exc:
            error(row_no, "grades", str(exc) + ".")
            grades = []
        if district_id:
            if district_id in seen_ids:
                error(
                    row_no,
                    "district_id",
                    f"District id '{district_id}' is already used on row {seen_ids[district_id]}.",
                )
            seen_ids[district_id] = row_no
        elif school and teacher:
            key = (school, teacher)
            if key in seen_teachers:
                error(
                    row_no,
                    "teacher",
                    f"'{teacher}' at '{school}' is already on row {seen_teachers[key]}; "
                    "give each a district_id if they are two people.",
                )
            seen_teachers[key] = row_no
        if code and school:
            previous = school_codes.get(school)
            if previous and previous[0] != code:
                error(
                    row_no,
                    "school_code",
                    f"'{school}' has code '{previous[0]}' on row {previous[1]} but '{code}' here.",
                )
            owner = code_owner.get(code)
            if owner and owner[0] != school:
                error(
                    row_no,
                    "school_code",
                    f"Code '{code}' is already used for '{owner[0]}' on row {owner[1]}.",
                )
            school_codes.setdefault(school, (code, row_no))
            code_owner.setdefault(code, (school, row_no))
        email: str | None = None
        if "email" in cells:
            email = cells["email"].lower()
            if email and valid_email_address(email) is None:
                error(row_no, "email", f"'{email[:80]}' is not an e-mail address.")
        rows.append(RosterRow(row_no, school, code, teacher, district_id, grades, email))
    if not rows and not report.errors:
        error(2, "", "The file has a header row but no teachers.")
    return rows


def _check_roster_against_db(session: Session, rows: list[RosterRow], report: RosterReport) -> None:
    by_code = {s.code: s.name for s in session.exec(select(School)) if s.code}
    for r in rows:
        if r.school_code and by_code.get(r.school_code, r.school) != r.school:
            report.errors.append(
                {
                    "row": r.row,
                    "column": "school_code",
                    "message": f"Code '{r.school_code}' already belongs to "
                    f"'{by_code[r.school_code]}'.",
                }
            )


def get_school(*, session: Session, school_id: int) -> School:
    """One school, or NotFound."""
    school = session.get(School, school_id)
    if school is None:
        raise NotFound("No such school.")
    return school


def teacher_counts(*, session: Session) -> dict[int, int]:
    """Active teachers per school id."""
    stmt = (
        select(Teacher.school_id, func.count())
        .where(Teacher.active == True)  # noqa: E712 (SQL expression)
        .group_by(col(Teacher.school_id))
    )
    return {school_id: n for school_id, n in session.exec(stmt)}


# --- personal API tokens ---------------------------------------------------------------------

TOKEN_PREFIX = "wt_"  # noqa: S105 (a marker, not a secret)


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(*, session: Session, user: User, name: str) -> tuple[str, ApiToken]:
    """A new personal token; the raw value is returned once and never stored."""
    name = name.strip()
    if not name:
        raise Invalid(
            "The token was not created.",
            details=[{"field": "name", "message": "Name the token after the script that uses it."}],
        )
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    assert user.id is not None
    token = ApiToken(user_id=user.id, name=name[:100], token_hash=_token_hash(raw), prefix=raw[:10])
    session.add(token)
    session.flush()
    return raw, token


def list_tokens(*, session: Session, user: User) -> list[ApiToken]:
    """The user's tokens, newest first (revoked ones too, marked)."""
    stmt = select(ApiToken).where(ApiToken.user_id == user.id).order_by(col(ApiToken.id).desc())
    return list(session.exec(stmt))


def revoke_token(*, session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
        session.flush()
    return token


def authenticate_token(*, session: Session, raw: str) -> tuple[User, ApiToken] | None:
    """The active user a live token belongs to, and the token (nothing is written)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == _token_hash(raw))).first()
    if token is None or token.revoked_at is not None:
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        return None
    return user, token


def token_use_due(token: ApiToken) -> bool:
    """Whether the token's last use should be recorded: at most once a minute, so scripts
    reading data do not turn every read into a write."""
    return token.last_used_at is None or utcnow() - token.last_used_at > timedelta(minutes=1)


def record_token_use(*, session: Session, token_id: int) -> None:
    """Record that a token was used now."""
    token = session.get(ApiToken, token_id)
    if token is not None:
        token.last_used_at = utcnow()
        session.add(token)
        session.flush()
