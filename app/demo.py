"""Demo data for trying Walkthrough locally: two schools, teachers and one user of each role."""

from sqlmodel import Session, select

from app.accounts import service
from app.accounts.models import Role, School, User

DEMO_PASSWORD = "walkthrough-demo"  # noqa: S105 (documented demo accounts, never in production)

DEMO_ROSTER = """school,school_code,teacher,district_id,grades
Lincoln Elementary,LIN,Ana García,T1001,K;1
Lincoln Elementary,LIN,Sam Okafor,T1002,2-3
Lincoln Elementary,LIN,Mei Lin Chen,T1003,4
Lincoln Elementary,LIN,Jordan Reyes,T1004,5
Roosevelt Middle,RMS,Priya Natarajan,T2001,6
Roosevelt Middle,RMS,Tomás Alvarez,T2002,7
Roosevelt Middle,RMS,Grace O'Neill,T2003,8
Roosevelt Middle,RMS,Darnell Brooks,T2004,6-8
"""

DEMO_USERS = [
    ("admin@demo.walkthrough.test", "Dana Whitfield", Role.admin, None),
    ("facilitator@demo.walkthrough.test", "Fran Okoye", Role.facilitator, None),
    ("principal@demo.walkthrough.test", "Pat Morales", Role.principal, "Lincoln Elementary"),
    ("coach@demo.walkthrough.test", "Casey Lindqvist", Role.observer, "Lincoln Elementary"),
    ("principal2@demo.walkthrough.test", "Robin Hayes", Role.principal, "Roosevelt Middle"),
]


def load_demo_data(*, session: Session) -> list[str]:
    """Add whatever demo data is missing (safe to run again); returns what was added."""
    added: list[str] = []
    report = service.import_roster(session=session, data=DEMO_ROSTER.encode())
    if not report.ok:  # pragma: no cover - the demo roster is fixed and tested
        raise RuntimeError(f"demo roster rejected: {report.errors}")
    if report.teachers_created:
        added.append(f"{report.teachers_created} teachers")
    schools = {s.name: s.id for s in session.exec(select(School))}
    for email, name, role, school in DEMO_USERS:
        if session.exec(select(User).where(User.email == email)).first():
            continue
        service.create_user(
            session=session,
            email=email,
            name=name,
            role=role.value,
            school_id=schools[school] if school else None,
            password=DEMO_PASSWORD,
        )
        added.append(email)
    session.flush()
    return added
