"""The `walkthrough` command: migrate, demo data, create an admin, serve."""

import argparse
import getpass
import os
import sys
from pathlib import Path

from sqlmodel import Session

from app.config import ConfigError, get_settings
from app.db import make_engine, migrate, set_district_timezone


def main(argv: list[str] | None = None) -> int:
    """Entry point of the walkthrough console command."""
    # Every table on the metadata: a command that touches one model (a rubric version, whose
    # audit rows point at users) must find the tables its foreign keys name.
    import app.models  # noqa: F401

    parser = argparse.ArgumentParser(prog="walkthrough", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    sub.add_parser("demo-data", help="load demo schools, teachers and users (not in production)")
    admin = sub.add_parser("create-admin", help="create an admin account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", required=True)
    admin.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from this environment variable instead of prompting",
    )
    rubrics = sub.add_parser("rubrics", help="check, load or add rubric versions")
    rsub = rubrics.add_subparsers(dest="rubrics_command", required=True)
    check = rsub.add_parser("check", help="validate rubric files (and published hashes)")
    check.add_argument("--path", type=Path, default=None, help="folder of rubrics")
    rsync = rsub.add_parser("sync", help="load new versions into the database")
    rsync.add_argument("--path", type=Path, default=None)
    new = rsub.add_parser("new-version", help="copy the latest version to the next as a draft")
    new.add_argument("slug")
    new.add_argument("--path", type=Path, default=None)
    analytics = sub.add_parser("analytics", help="the dashboards' analytics tables")
    asub = analytics.add_subparsers(dest="analytics_command", required=True)
    asub.add_parser(
        "rebuild",
        help="make them anew from every observation (after changing the time zone); "
        "run it with the app stopped",
    )
    serve = sub.add_parser("serve", help="run the web server (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"walkthrough: {exc}", file=sys.stderr)
        return 2

    if args.command == "migrate":
        before, after = migrate(settings.database_url)
        if before is None:
            print(f"Database created (schema revision {after}).")
        elif before != after:
            print(f"Database migrated from schema revision {before} to {after}.")
        else:
            print(f"Database is up to date (schema revision {after}).")
        return 0
    if args.command == "demo-data":
        if settings.env == "production":
            print("walkthrough: demo data is never loaded in production.", file=sys.stderr)
            return 2
        from app.demo import load_demo_data

        with Session(make_engine(settings.database_url)) as session:
            added = load_demo_data(session=session)
            session.commit()
        print("Demo data: " + (", ".join(added) if added else "already present."))
        return 0
    if args.command == "create-admin":
        return _create_admin(args, settings.database_url)
    if args.command == "rubrics":
        from app.rubrics.cli import run

        return run(args, settings)
    if args.command == "analytics":
        from app.analytics.service import rebuild

        engine = make_engine(settings.database_url)
        set_district_timezone(engine, settings.timezone)
        with Session(engine) as session:
            count = rebuild(session=session)
            session.commit()
        print(f"Analytics rebuilt from {count} observations ({settings.timezone}).")
        return 0
    if args.command == "serve":
        import uvicorn

        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            proxy_headers=True,
            forwarded_allow_ips=settings.trusted_proxies,
        )
        return 0
    return 2  # pragma: no cover - argparse enforces the choices


def _create_admin(args: argparse.Namespace, url: str) -> int:
    from app.accounts import service
    from app.errors import Invalid

    if args.password_env:
        password = os.environ.get(args.password_env, "")
    else:
        password = getpass.getpass("Password for the new admin: ")
    with Session(make_engine(url), expire_on_commit=False) as session:
        try:
            user = service.create_user(
                session=session,
                email=args.email,
                name=args.name,
                role="admin",
                school_id=None,
                password=password,
            )
        except Invalid as exc:
            for d in exc.details:
                print(f"walkthrough: {d['field']}: {d['message']}", file=sys.stderr)
            return 1
        session.commit()
    print(f"Created admin {user.email}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
