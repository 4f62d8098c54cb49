"""`walkthrough rubrics check | sync | new-version`."""

import argparse
import sys
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from app.config import Settings
from app.db import make_engine
from app.rubrics.loader import (
    RubricDefinition,
    RubricError,
    RubricProblems,
    check_folder,
    next_version_file,
    sync_rubrics,
    sync_session,
)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one rubrics subcommand; prints every problem and returns the exit code."""
    root = args.path or settings.rubrics_dir
    if args.rubrics_command == "new-version":
        try:
            target = next_version_file(root, args.slug)
        except (FileNotFoundError, FileExistsError) as exc:
            print(f"walkthrough: {exc}", file=sys.stderr)
            return 1
        print(f"Created {target} as a draft. Edit it, then set status: published.")
        return 0
    if args.rubrics_command == "sync":
        try:
            report = sync_rubrics(make_engine(settings.database_url), root)
        except RubricProblems as exc:
            print(exc, file=sys.stderr)
            return 1
        except SQLAlchemyError as exc:
            reason = str(exc).splitlines()[0]
            print(
                f"walkthrough: cannot load rubrics ({reason}); run `walkthrough migrate` first.",
                file=sys.stderr,
            )
            return 1
        print(
            f"Rubrics: {len(report.inserted)} new, {len(report.updated)} updated, "
            f"{len(report.verified)} unchanged."
        )
        return 0

    good, errors = check_folder(root)
    db_note = ""
    if not errors:
        errors, db_note = _check_against_database(settings, good)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"{len(errors)} problem(s) in {root}", file=sys.stderr)
        return 1
    print(f"OK: {len(good)} rubric version file(s) in {root} are valid.{db_note}")
    return 0


def _check_against_database(
    settings: Settings, good: list[tuple[Path, RubricDefinition]]
) -> tuple[list[RubricError], str]:
    """Compare published hashes with the database when it is reachable (read-only)."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            if not inspect(session.connection()).has_table("rubric_version"):
                return [], " (database not migrated: published hashes not checked)"
            try:
                sync_session(session, good)
            except RubricProblems as exc:
                return exc.errors, ""
            finally:
                session.rollback()
    except SQLAlchemyError:
        return [], " (database unreachable: published hashes not checked)"
    finally:
        engine.dispose()
    return [], " Published versions match the hashes in the database."
