"""Roster import: a clean file imports, a bad one names row and column and imports nothing."""

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from app.accounts import service
from app.accounts.models import School, Teacher
from tests.helpers import World, login

GOOD = (
    "school,school_code,teacher,district_id,grades\r\n"
    "Lincoln Elementary,LIN,Ana García,T1,K;1\r\n"
    'Lincoln Elementary,LIN,"O\'Neill, Grace",T2,3-5\r\n'
    "Hoover High,HHS,Sam Lee,,9 10\r\n"
)


def _count(session: Session, model: type) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def _upload(client: TestClient, token: str, body: str | bytes, name: str = "roster.csv"):  # type: ignore[no-untyped-def]
    data = body.encode() if isinstance(body, str) else body
    return client.post(
        "/admin/roster",
        data={"csrf_token": token},
        files={"file": (name, data, "text/csv")},
    )


def test_good_roster_imports_schools_and_teachers(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.admin)
    response = _upload(client, token, GOOD)
    assert response.status_code == 200, response.text
    assert "Imported roster.csv" in response.text
    hoover = session.exec(select(School).where(School.name == "Hoover High")).one()
    assert hoover.code == "HHS"
    grace = session.exec(select(Teacher).where(Teacher.district_id == "T2")).one()
    assert grace.name == "O'Neill, Grace"
    assert grace.grade_list == ["3", "4", "5"]
    sam = session.exec(select(Teacher).where(Teacher.name == "Sam Lee")).one()
    assert sam.school_id == hoover.id
    assert sam.grade_list == ["9", "10"]


def test_reimporting_the_same_file_changes_nothing(world: World, session: Session) -> None:
    first = service.import_roster(session=session, data=GOOD.encode())
    session.commit()
    snapshot = [(t.id, t.name, t.grades, t.updated_at) for t in session.exec(select(Teacher))]
    second = service.import_roster(session=session, data=GOOD.encode())
    session.commit()
    # the world's Ana García (no district id yet) is matched by name and school and gets T1
    assert (first.teachers_created, first.teachers_updated) == (2, 1)
    assert (second.teachers_created, second.teachers_updated, second.schools_created) == (0, 0, 0)
    assert second.teachers_unchanged == 3
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    assert [
        (t.id, t.name, t.grades, t.updated_at) for t in session.exec(select(Teacher))
    ] == snapshot


def test_reimport_updates_a_teacher_matched_by_district_id(world: World, session: Session) -> None:
    service.import_roster(session=session, data=GOOD.encode())
    changed = GOOD.replace("Ana García,T1,K;1", "Ana García-Ruiz,T1,K;1;2")
    report = service.import_roster(session=session, data=changed.encode())
    assert report.teachers_updated == 1
    assert report.teachers_created == 0
    ana = session.exec(select(Teacher).where(Teacher.district_id == "T1")).one()
    assert (ana.name, ana.grades) == ("Ana García-Ruiz", "K,1,2")


def test_existing_teacher_without_district_id_is_matched_by_name_and_school(
    world: World, session: Session
) -> None:
    before = _count(session, Teacher)
    report = service.import_roster(
        session=session, data=b"school,teacher,grades\nLincoln Elementary,Ana Garc\xc3\xada,K;1\n"
    )
    assert report.ok
    assert report.teachers_unchanged == 1
    assert _count(session, Teacher) == before


def test_bad_rows_are_all_reported_with_row_and_column_and_nothing_is_imported(
    client: TestClient, world: World, session: Session
) -> None:
    bad = (
        "school,school_code,teacher,district_id,grades\r\n"
        "Hoover High,HHS,Sam Lee,T9,9\r\n"  # fine on its own
        ",,Nobody,,\r\n"  # row 3: school missing
        "Hoover High,HHS,,T10,10\r\n"  # row 4: teacher missing
        "Hoover High,HHS,Kim Park,T9,13\r\n"  # row 5: district id reused, bad grade
        "Hoover High,XXX,Lee Moss,,\r\n"  # row 6: code differs for the same school
        "Hoover High,HHS,Too,Many,Cells,Here\r\n"  # row 7: ragged
    )
    token = login(client, world.admin)
    schools_before, teachers_before = _count(session, School), _count(session, Teacher)
    response = _upload(client, token, bad)
    assert response.status_code == 422
    report = service.import_roster(session=session, data=bad.encode())
    assert [(e["row"], e["column"]) for e in report.errors] == [
        (3, "school"),
        (4, "teacher"),
        (5, "grades"),
        (5, "district_id"),
        (6, "school_code"),
        (7, ""),
    ]
    assert "'13' is not a grade" in str(report.errors[2]["message"])
    assert "already used on row 2" in str(report.errors[3]["message"])
    assert "Nothing was imported" in response.text
    assert "already used on row 2" in response.text
    assert (_count(session, School), _count(session, Teacher)) == (schools_before, teachers_before)


def test_missing_and_unknown_columns_are_named(world: World, session: Session) -> None:
    report = service.import_roster(session=session, data=b"school,name\nLincoln,Ana\n")
    assert {(e["row"], e["column"]) for e in report.errors} == {(1, "name"), (1, "teacher")}


def test_code_of_another_school_in_the_database_is_refused(world: World, session: Session) -> None:
    report = service.import_roster(
        session=session, data=b"school,school_code,teacher\nNew School,LIN,Kim\n"
    )
    assert report.errors == [
        {
            "row": 2,
            "column": "school_code",
            "message": "Code 'LIN' already belongs to 'Lincoln Elementary'.",
        }
    ]


def test_non_utf8_empty_and_header_only_files_get_clear_errors(
    world: World, session: Session
) -> None:
    latin1 = "school,teacher\nLincoln,José\n".encode("latin-1")
    assert "not UTF-8" in str(
        service.import_roster(session=session, data=latin1).errors[0]["message"]
    )
    assert "empty" in str(service.import_roster(session=session, data=b"").errors[0]["message"])
    only = service.import_roster(session=session, data=b"school,teacher\n")
    assert "no teachers" in str(only.errors[0]["message"])


def test_excel_bom_and_semicolon_grades_are_accepted(world: World, session: Session) -> None:
    data = "\ufeffschool,teacher,grades\r\nLincoln Elementary,Bo Chu,PK;K\r\n".encode()
    report = service.import_roster(session=session, data=data)
    assert report.ok, report.errors
    assert report.teachers_created == 1


def test_upload_without_a_file_or_too_large_is_refused(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post("/admin/roster", data={"csrf_token": token})
    assert response.status_code == 422
    assert "Choose a CSV file" in response.text
    big = "school,teacher\n" + "Lincoln Elementary,Someone\n" * 100_000
    response = _upload(client, token, big)
    assert response.status_code == 413


def test_grade_parsing() -> None:
    assert service.parse_grades("K-2") == ["K", "1", "2"]
    assert service.parse_grades(" 5 ; 3,4 ") == ["3", "4", "5"]
    assert service.parse_grades("") == []
    for bad in ("5-3", "13", "grade 4"):
        try:
            service.parse_grades(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def test_a_ten_thousand_row_roster_imports_at_once_and_again_changes_nothing(
    client: TestClient, world: World, session: Session
) -> None:
    rows = ["school,teacher,district_id,grades"]
    rows += [f"School {i % 40},Teacher {i},D{i},{i % 12 + 1}" for i in range(10_000)]
    body = "\r\n".join(rows) + "\r\n"
    token = login(client, world.admin)
    response = _upload(client, token, body)
    assert response.status_code == 200, response.text[:500]
    assert _count(session, Teacher) == 10_000 + 1
    report = service.import_roster(session=session, data=body.encode())
    assert (report.teachers_created, report.teachers_updated) == (0, 0)
    assert report.teachers_unchanged == 10_000
    session.rollback()


def test_two_rows_never_claim_the_same_existing_teacher(world: World, session: Session) -> None:
    body = (
        "school,teacher,district_id\r\n"
        "Lincoln Elementary,Ana García,A1\r\n"
        "Lincoln Elementary,Ana García,A2\r\n"
    )
    report = service.import_roster(session=session, data=body.encode())
    assert report.ok, report.errors
    assert (report.teachers_updated, report.teachers_created) == (1, 1)
    anas = session.exec(select(Teacher).where(Teacher.name == "Ana García")).all()
    assert sorted(t.district_id or "" for t in anas) == ["A1", "A2"]
