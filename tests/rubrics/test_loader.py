"""Rubric files: every validation error names file, field and line; hashing and diffs."""

import shutil
from pathlib import Path

import pytest

from app.rubrics.loader import (
    RUBRICS_DIR,
    RubricDefinition,
    check_folder,
    compare_versions,
    next_version_file,
    validate_file,
)

VALID = """\
slug: demo
version: 1
title: Demo rubric
description: A small rubric for tests.
status: published
source:
  attribution: Written for the tests.
sections:
  - key: main
    title: Main
    items:
      - key: rating
        kind: scale
        title: A rating
        allow_not_observed: true
        levels:
          - value: 1
            label: Low
            descriptor: Low level.
          - value: 2
            label: High
            descriptor: High level.
      - key: tally
        kind: count
        title: A tally
        max: 10
      - key: seen
        kind: check
        title: A look-for
      - key: notes
        kind: text
        title: Notes
"""


def write(root: Path, text: str, slug: str = "demo", name: str = "v1.yaml") -> Path:
    folder = root / slug
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def errors_of(path: Path) -> list[tuple[str, int | None, str]]:
    definition, errors = validate_file(path)
    assert definition is None
    assert errors, "expected errors"
    for e in errors:
        assert e.file == str(path)
    return [(e.field, e.line, e.message) for e in errors]


def test_valid_file_loads(tmp_path: Path) -> None:
    definition, errors = validate_file(write(tmp_path, VALID))
    assert errors == []
    assert definition is not None
    assert [item.key for _s, item in definition.items()] == ["rating", "tally", "seen", "notes"]


def test_bad_yaml_syntax_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("title: A tally", "title: [A tally"))
    [(_field, line, message)] = errors_of(path)
    assert message.startswith("YAML syntax error")
    assert line is not None and 24 <= line <= 26
    _definition, errors = validate_file(path)
    assert f"{path}:{line}:" in str(errors[0])


def test_unknown_key_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace("        max: 10\n", "        max: 10\n        colour: red\n")
    )
    assert errors_of(path) == [
        (
            "sections[0].items[1].colour",
            27,
            "unknown key (check the spelling; see docs/rubrics.md for the allowed keys)",
        )
    ]


def test_duplicate_item_keys(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("key: seen", "key: tally"))
    [(field, line, message)] = errors_of(path)
    assert field == "sections[0].items[2].key"
    assert line == 27
    assert message == "item key 'tally' is already used at sections[0].items[1]"


def test_duplicate_mapping_key_in_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace("title: Demo rubric\n", "title: Demo rubric\ntitle: Again\n")
    )
    found = errors_of(path)
    assert ("title", 4, "the key 'title' appears twice in the same mapping") in found


def test_duplicate_level_values(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("value: 2", "value: 1"))
    assert errors_of(path) == [
        ("sections[0].items[0].levels[1].value", 20, "level value 1 appears twice")
    ]


def test_unordered_level_values(tmp_path: Path) -> None:
    text = VALID.replace("value: 1", "value: 9")
    path = write(tmp_path, text)
    [(field, line, message)] = errors_of(path)
    assert field == "sections[0].items[0].levels[1].value"
    assert line == 20
    assert "increasing order (2 comes after 9)" in message


def test_empty_scale(tmp_path: Path) -> None:
    start = VALID.index("        levels:\n")
    end = VALID.index("      - key: tally")
    path = write(tmp_path, VALID[:start] + "        levels: []\n" + VALID[end:])
    assert errors_of(path) == [
        ("sections[0].items[0].levels", 16, "a scale needs at least two levels")
    ]


def test_version_must_match_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, VALID, name="v2.yaml")
    assert errors_of(path) == [
        ("version", 2, "version 1 does not match the file name 'v2.yaml' (expected v1.yaml)")
    ]


def test_slug_must_match_folder(tmp_path: Path) -> None:
    path = write(tmp_path, VALID, slug="other")
    assert errors_of(path) == [("slug", 1, "slug 'demo' does not match its folder 'other'")]


def test_missing_descriptor_points_at_the_level(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("            descriptor: High level.\n", ""))
    assert errors_of(path) == [
        ("sections[0].items[0].levels[1].descriptor", 20, "required but missing")
    ]


def test_unknown_item_kind(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("kind: check", "kind: checkbox"))
    [(field, line, message)] = errors_of(path)
    assert (field, line) == ("sections[0].items[2]", 27)
    assert "scale, count, check, text" in message


def test_bad_status_and_key_pattern(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID.replace("status: published", "status: final").replace("key: seen", "key: Seen It"),
    )
    fields = {f for f, _l, _m in errors_of(path)}
    assert fields == {"status", "sections[0].items[2].key"}


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- just\n- a list\n")
    assert errors_of(path)[0][2].startswith("a rubric file must be a mapping")


def test_check_folder_reports_every_file_and_stray_names(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    write(tmp_path, VALID.replace("version: 1", "version: 2"), name="v2.yaml")
    write(tmp_path, VALID, name="draft.yaml")
    write(tmp_path, VALID.replace("value: 2", "value: 1"), name="v3.yaml")
    good, errors = check_folder(tmp_path)
    assert [d.version for _p, d in good] == [1, 2]
    assert len(errors) == 3  # stray name, v3's duplicate level, v3's version mismatch
    assert any("must be named v<N>.yaml" in e.message for e in errors)


def test_shipped_rubrics_are_valid() -> None:
    good, errors = check_folder(RUBRICS_DIR)
    assert errors == []
    slugs = {(d.slug, d.version) for _p, d in good}
    assert slugs == {
        ("math-discourse-quality", 1),
        ("math-discourse-quality", 2),
        ("math-talk-community", 1),
        ("discourse-walkthrough", 1),
        ("who-talks", 1),
    }
    by_key = {(d.slug, d.version): d for _p, d in good}
    mtc = by_key[("math-talk-community", 1)]
    scales = [i for _s, i in mtc.items() if i.kind == "scale"]
    assert [i.key for i in scales] == [
        "questioning",
        "explaining_thinking",
        "sources_of_ideas",
        "responsibility_for_learning",
    ]
    assert all([lv.value for lv in i.levels] == [0, 1, 2, 3] for i in scales)  # type: ignore[union-attr]
    mdq = by_key[("math-discourse-quality", 1)]
    assert all(
        [lv.value for lv in i.levels] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
        for _s, i in mdq.items()
        if i.kind == "scale"
    )
    walk = by_key[("discourse-walkthrough", 1)]
    assert {i.kind for _s, i in walk.items()} == {"check", "count", "scale", "text"}


def test_content_hash_ignores_formatting_and_status_but_not_content(tmp_path: Path) -> None:
    a, _ = validate_file(write(tmp_path, VALID))
    b, _ = validate_file(
        write(tmp_path, "# a comment\n" + VALID.replace("status: published", "status: retired"))
    )
    c, _ = validate_file(write(tmp_path, VALID.replace("Low level.", "Lower level.")))
    assert a and b and c
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()


def _shipped(version: int) -> RubricDefinition:
    definition, errors = validate_file(RUBRICS_DIR / "math-discourse-quality" / f"v{version}.yaml")
    assert definition is not None, errors
    return definition


def test_diff_of_shipped_discourse_quality_v1_v2() -> None:
    changes = compare_versions(_shipped(1), _shipped(2))
    assert [(c.key, c.changes) for c in changes] == [
        ("building_on_ideas", ("reworded",)),
        ("student_questions", ("added",)),
    ]
    [field] = changes[0].fields
    assert field.field == "level 4 descriptor"
    assert "some exchanges" in field.old
    assert "without the teacher in between" in field.new


def test_diff_reports_removed_scale_changes_and_moves(tmp_path: Path) -> None:
    old, _ = validate_file(write(tmp_path, VALID))
    changed = (
        VALID.replace("allow_not_observed: true", "allow_not_observed: false")
        .replace("max: 10", "max: 20")
        .replace("      - key: notes\n        kind: text\n        title: Notes\n", "")
    )
    new, _ = validate_file(write(tmp_path, changed))
    assert old and new
    result = {c.key: c.changes for c in compare_versions(old, new)}
    assert result == {
        "rating": ("scale_changed",),
        "tally": ("scale_changed",),
        "notes": ("removed",),
    }


def test_new_version_copies_latest_as_draft(tmp_path: Path) -> None:
    shutil.copytree(RUBRICS_DIR / "math-discourse-quality", tmp_path / "math-discourse-quality")
    target = next_version_file(tmp_path, "math-discourse-quality")
    assert target.name == "v3.yaml"
    definition, errors = validate_file(target)
    assert errors == []
    assert definition is not None
    assert (definition.version, definition.status.value) == (3, "draft")
    with pytest.raises(FileNotFoundError):
        next_version_file(tmp_path, "nope")
