"""Rubric YAML files: the format (pydantic), validation with file/field/line errors, hashing,
comparing two versions, and loading into the database with published versions kept immutable.
"""

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
)
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.db import next_seq, utcnow
from app.rubrics.models import RubricStatus, RubricVersion

RUBRICS_DIR = Path(__file__).resolve().parent
LOAD_LOCK = 7_283_002

Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
MAX_MARKERS = 80  # student markers on one participation map (a class, or two joined)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Level(_Strict):
    """One level of a scale item."""

    value: int = Field(ge=-1_000_000, le=1_000_000)
    label: Text
    descriptor: Text


class ItemBase(_Strict):
    key: Key
    title: Text
    prompt: Text | None = None  # what to look for / an evidence prompt
    evidence: bool = True  # offer an evidence note beside the value
    # Written feedback meant for the teacher (a strength, a next step): offered, checked, when
    # the observer shares. Left out of the content when false, so hashes stay as they were.
    share_with_teacher: bool = False

    @model_serializer(mode="wrap")
    def _without_default_share(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("share_with_teacher") is False:
            del data["share_with_teacher"]
        return data


class ScaleItem(ItemBase):
    """Ordered levels; 'not observed' is not a score and never counts as 0."""

    kind: Literal["scale"]
    levels: list[Level]
    allow_not_observed: bool = False


class CountItem(ItemBase):
    """A tally, optionally capped."""

    kind: Literal["count"]
    max: int | None = Field(default=None, ge=1, le=1_000_000_000)


class CheckItem(ItemBase):
    """A look-for: present or not present."""

    kind: Literal["check"]


class TextItem(ItemBase):
    """Evidence or notes."""

    kind: Literal["text"]
    evidence: bool = False


class Code(_Strict):
    """One entry of a participation item's codebook: a talk type, a teacher talk move or a
    grouping label."""

    key: Key
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
    description: Text | None = None


class ParticipationItem(ItemBase):
    """A participation map: anonymous student markers, numbered and never named, and each
    contribution coded by talk type as it happens. Optionally the teacher's talk moves too,
    and district-defined grouping labels (off unless the district lists them, with what they
    mean in `groups_meaning`)."""

    kind: Literal["participation"]
    evidence: bool = False
    talk_types: list[Code] = Field(min_length=1, max_length=12)
    teacher_moves: list[Code] = Field(default_factory=list, max_length=12)
    groups: list[Code] = Field(default_factory=list, max_length=12)
    groups_meaning: Text | None = None
    # The layout the capture page offers first: this many seats, this many to a row.
    seats: int = Field(default=24, ge=1, le=MAX_MARKERS)
    per_row: int = Field(default=6, ge=1, le=12)

    def codebook(self) -> dict[str, Any]:
        """What the capture page's map needs: the codes and the first layout."""
        return self.model_dump(
            include={"talk_types", "teacher_moves", "groups", "seats", "per_row"}
        )


AnyItem = ScaleItem | CountItem | CheckItem | TextItem | ParticipationItem
Item = Annotated[AnyItem, Field(discriminator="kind")]


class Section(_Strict):
    """A titled group of items."""

    key: Key
    title: Text
    description: Text | None = None
    items: list[Item]


class Source(_Strict):
    """Where the instrument comes from and how to cite it."""

    attribution: Text
    citation: Text | None = None
    url: Text | None = None


class CrosswalkItem(_Strict):
    """How one item of this version relates to the previous version's items: `continues` one
    of them with the same meaning (`previous`: its key, the same key by default; `levels`:
    old level -> new level, for a scale whose levels changed), is `changed` (not comparable)
    or is `new`."""

    key: Key
    status: Literal["continues", "changed", "new"]
    previous: Key | None = None
    levels: dict[Annotated[int, Field(ge=-1_000_000, le=1_000_000)], int] | None = None


class Crosswalk(_Strict):
    """The bridge from an earlier version (`from_version`): what keeps a district's time
    series across a new version. Items it does not list are new."""

    from_version: int = Field(ge=1, le=1_000_000)
    items: list[CrosswalkItem] = Field(default_factory=list)

    def of(self, key: str) -> CrosswalkItem | None:
        """The entry for one item of this version, if it continues an earlier item."""
        for entry in self.items:
            if entry.key == key and entry.status == "continues":
                return entry
        return None


class RubricDefinition(_Strict):
    """One version of a rubric, as written in app/rubrics/<slug>/v<N>.yaml."""

    slug: Slug
    version: int = Field(ge=1, le=1_000_000)
    title: Text
    description: Text
    status: RubricStatus
    source: Source
    sections: list[Section] = Field(min_length=1)
    crosswalk: Crosswalk | None = None

    @model_serializer(mode="wrap")
    def _without_empty_crosswalk(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A version without a crosswalk serialises (and hashes) exactly as before the field
        # existed: published versions keep their content hash.
        data = handler(self)
        if isinstance(data, dict) and data.get("crosswalk", ...) is None:
            del data["crosswalk"]
        return data

    def items(self) -> Iterator[tuple[Section, AnyItem]]:
        """Every item with its section, in order."""
        for section in self.sections:
            for item in section.items:
                yield section, item

    def content_hash(self) -> str:
        """SHA-256 of the canonical content; the status is not content (publishing is no edit)."""
        data = self.model_dump(mode="json", exclude={"status"})
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


# --- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RubricError:
    """One problem in a rubric file, with where it is."""

    file: str
    field: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.field or '(file)'}: {self.message}"


class RubricProblems(Exception):
    """Rubric files that cannot be used; str() lists every problem."""

    def __init__(self, errors: list[RubricError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


Path_ = tuple[str | int, ...]


def _field_name(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Marks:
    """Line and column (1-based) of every node of a YAML document, by path."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.marks: dict[Path_, tuple[int, int]] = {}
        self.duplicates: list[tuple[Path_, str]] = []
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Path_) -> None:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    self.duplicates.append(((*path, key), key))
                seen.add(key)
                self.marks[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                self._walk(value_node, (*path, key))
                self.marks[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
        elif isinstance(node, yaml.SequenceNode):
            for i, child in enumerate(node.value):
                self._walk(child, (*path, i))

    def locate(self, path: Path_) -> tuple[Path_, int | None, int | None]:
        """The deepest known node on the path (missing fields point at their parent)."""
        clean: list[str | int] = []
        for part in path:
            candidate = (*clean, part)
            if candidate in self.marks:
                clean.append(part)
            elif isinstance(part, str) and part in (
                "scale",
                "count",
                "check",
                "text",
                "participation",
            ):
                continue  # pydantic's discriminator tag, not a YAML key
            else:
                clean.append(part)
        probe = tuple(clean)
        while probe and probe not in self.marks:
            probe = probe[:-1]
        line, column = self.marks.get(probe, (None, None))
        return tuple(clean), line, column


def _describe(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see docs/rubrics.md for the allowed keys)"
    if kind == "missing":
        return "required but missing"
    if kind == "union_tag_invalid":
        return "kind must be one of: scale, count, check, text, participation"
    if kind == "union_tag_not_found":
        return "each item needs a kind: scale, count, check, text or participation"
    if kind == "string_pattern_mismatch":
        return "use lower-case letters, digits and _ (slugs: -), starting with a letter"
    if kind == "string_too_short":
        return "must not be empty"
    return str(err.get("msg", "invalid"))


# --- validation ---------------------------------------------------------------------------------


Previous = Callable[[str, int], "RubricDefinition | None"]


def validate_file(
    path: Path, *, display: str | None = None, previous: Previous | None = None
) -> tuple[RubricDefinition | None, list[RubricError]]:
    """Parse and check one rubric file; returns the definition or every error found."""
    name = display or str(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [RubricError(name, "", None, None, f"cannot read the file: {exc}")]
    return validate_text(raw, display=name, path=path, previous=previous)


def validate_text(
    raw: str, *, display: str, path: Path | None = None, previous: Previous | None = None
) -> tuple[RubricDefinition | None, list[RubricError]]:
    """Parse and check a rubric in the YAML format (JSON is YAML too), naming `display` and
    the line of each problem; `path` adds the checks that its folder and file name agree;
    `previous(slug, version)` gives the earlier version a crosswalk names (None: there is
    none to bridge from), to check the crosswalk against it."""
    name = display
    try:
        root = yaml.compose(raw, Loader=yaml.SafeLoader)
        data = yaml.safe_load(raw)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        return None, [RubricError(name, "", line, column, f"YAML syntax error: {problem}")]
    except yaml.YAMLError as exc:
        return None, [RubricError(name, "", None, None, f"YAML syntax error: {exc}")]
    except RecursionError:
        return None, [RubricError(name, "", None, None, "the document is nested too deeply")]

    marks = _Marks(root)
    errors: list[RubricError] = []

    def add(where: Path_, message: str) -> None:
        clean, line, column = marks.locate(where)
        errors.append(RubricError(name, _field_name(clean), line, column, message))

    for dup_path, key in marks.duplicates:
        add(dup_path, f"the key '{key}' appears twice in the same mapping")
    if not isinstance(data, dict):
        add((), "a rubric file must be a mapping with slug, version, title, ... at the top level")
        return None, errors

    try:
        definition = RubricDefinition.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            add(tuple(err["loc"]), _describe(dict(err)))
        return None, errors

    if path is not None:
        for check_path, message in _file_name_problems(definition, path):
            add(check_path, message)
    for check_path, message in content_problems(definition):
        add(check_path, message)
    if definition.crosswalk is not None and previous is not None:
        earlier = previous(definition.slug, definition.crosswalk.from_version)
        for check_path, message in crosswalk_problems(definition, earlier):
            add(check_path, message)
    return (None, errors) if errors else (definition, [])


def to_yaml(content: dict[str, Any]) -> str:
    """A stored version in the YAML format, keys in the format's order (the exchange format:
    validate_text reads it back to the same content hash)."""
    return yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=100)


def _file_name_problems(d: RubricDefinition, path: Path) -> Iterator[tuple[Path_, str]]:
    folder = path.parent.name
    if d.slug != folder:
        yield ("slug",), f"slug '{d.slug}' does not match its folder '{folder}'"
    if path.stem != f"v{d.version}":
        yield (
            ("version",),
            f"version {d.version} does not match the file name '{path.name}' "
            f"(expected v{d.version}.yaml)",
        )


def content_problems(d: RubricDefinition) -> Iterator[tuple[Path_, str]]:
    """What the format's types cannot say: keys used once, scales in order."""
    section_keys: dict[str, int] = {}
    item_keys: dict[str, Path_] = {}
    for s_index, section in enumerate(d.sections):
        if section.key in section_keys:
            yield ("sections", s_index, "key"), f"section key '{section.key}' is used twice"
        section_keys[section.key] = s_index
        if not section.items:
            yield ("sections", s_index, "items"), "a section needs at least one item"
        for i_index, item in enumerate(section.items):
            here: Path_ = ("sections", s_index, "items", i_index)
            if item.key in item_keys:
                first = _field_name(item_keys[item.key])
                yield (*here, "key"), f"item key '{item.key}' is already used at {first}"
            else:
                item_keys[item.key] = here
            if isinstance(item, ScaleItem):
                yield from _scale_problems(item, here)
            elif isinstance(item, ParticipationItem):
                yield from _participation_problems(item, here)
    if d.crosswalk is not None:
        yield from _crosswalk_shape(d, d.crosswalk)


def _crosswalk_shape(d: RubricDefinition, crosswalk: Crosswalk) -> Iterator[tuple[Path_, str]]:
    """The crosswalk against this version alone: its items, once each; `previous` and
    `levels` only where an item continues; new levels that this item has."""
    items = {item.key: item for _section, item in d.items()}
    listed: set[str] = set()
    for index, entry in enumerate(crosswalk.items):
        here: Path_ = ("crosswalk", "items", index)
        item = items.get(entry.key)
        if item is None:
            yield (*here, "key"), f"'{entry.key}' is not an item of this version"
            continue
        if entry.key in listed:
            yield (*here, "key"), f"'{entry.key}' is listed twice"
        listed.add(entry.key)
        if entry.status != "continues":
            for name in ("previous", "levels"):
                if getattr(entry, name) is not None:
                    yield (*here, name), f"only an item that continues has {name}"
            continue
        if entry.levels is not None:
            if not isinstance(item, ScaleItem):
                yield (*here, "levels"), "levels map the levels of a scale item"
                continue
            values = {lv.value for lv in item.levels}
            for old, new in entry.levels.items():
                if new not in values:
                    yield (
                        (*here, "levels", old),
                        f"{new} is not a level of '{entry.key}' in this version",
                    )


def crosswalk_problems(
    d: RubricDefinition, earlier: RubricDefinition | None
) -> Iterator[tuple[Path_, str]]:
    """The crosswalk against the version it bridges from: that version exists (published or
    retired), each continued item is there with the same kind, and a scale whose levels
    changed maps every old level."""
    crosswalk = d.crosswalk
    if crosswalk is None:
        return
    if earlier is None:
        yield (
            ("crosswalk", "from_version"),
            f"'{d.slug}' has no published version {crosswalk.from_version} to bridge from",
        )
        return
    old_items = {item.key: item for _section, item in earlier.items()}
    for index, entry in enumerate(crosswalk.items):
        if entry.status != "continues":
            continue
        here: Path_ = ("crosswalk", "items", index)
        new_item = next((i for _s, i in d.items() if i.key == entry.key), None)
        old_item = old_items.get(entry.previous or entry.key)
        if new_item is None:
            continue  # said by _crosswalk_shape
        if old_item is None:
            yield (
                (*here, "previous" if entry.previous else "key"),
                f"version {earlier.version} has no item '{entry.previous or entry.key}' to "
                "continue (name it in previous, or mark this item new)",
            )
            continue
        if old_item.kind != new_item.kind:
            yield (
                (*here, "status"),
                f"'{old_item.key}' was a {old_item.kind} item and '{new_item.key}' is a "
                f"{new_item.kind} item: mark it changed (not comparable)",
            )
            continue
        if isinstance(old_item, ScaleItem) and isinstance(new_item, ScaleItem):
            old_values = [lv.value for lv in old_item.levels]
            if entry.levels is None:
                if old_values != [lv.value for lv in new_item.levels]:
                    yield (
                        (*here, "levels"),
                        f"the levels of '{new_item.key}' changed: map each old level "
                        f"({', '.join(map(str, old_values))}) to a new one, or mark it changed",
                    )
                continue
            for value in entry.levels:
                if value not in old_values:
                    yield (
                        (*here, "levels", value),
                        f"{value} is not a level of '{old_item.key}' in version {earlier.version}",
                    )
            missing = [v for v in old_values if v not in entry.levels]
            if missing:
                yield (
                    (*here, "levels"),
                    f"map every old level of '{old_item.key}': "
                    f"{', '.join(map(str, missing))} missing",
                )


def _scale_problems(item: ScaleItem, here: Path_) -> Iterator[tuple[Path_, str]]:
    if not item.levels:
        yield (*here, "levels"), "a scale needs at least two levels"
        return
    if len(item.levels) < 2:
        yield (*here, "levels"), "a scale needs at least two levels"
    seen: set[int] = set()
    previous: int | None = None
    for index, level in enumerate(item.levels):
        where = (*here, "levels", index, "value")
        if level.value in seen:
            yield where, f"level value {level.value} appears twice"
        elif previous is not None and level.value < previous:
            yield (
                where,
                f"levels must be listed in increasing order ({level.value} comes after {previous})",
            )
        seen.add(level.value)
        previous = level.value


def _participation_problems(item: ParticipationItem, here: Path_) -> Iterator[tuple[Path_, str]]:
    for field_name in ("talk_types", "teacher_moves", "groups"):
        seen: set[str] = set()
        for index, code in enumerate(getattr(item, field_name)):
            if code.key in seen:
                yield (*here, field_name, index, "key"), f"'{code.key}' is listed twice"
            seen.add(code.key)
    if item.evidence:
        yield (
            (*here, "evidence"),
            "a participation map takes no evidence note (free text beside it could name a "
            "student): leave evidence out, and write observations in a notes item",
        )
    if item.groups and item.groups_meaning is None:
        yield (
            (*here, "groups_meaning"),
            "say what the grouping labels mean (groups_meaning): the district's definition, "
            "shown to observers and in the codebook",
        )
    if item.groups_meaning is not None and not item.groups:
        yield (*here, "groups_meaning"), "groups_meaning explains groups: list the groups too"


def discover(root: Path) -> list[Path]:
    """Every rubric version file under root (<slug>/v<N>.yaml), in a stable order."""
    return sorted(p for p in root.glob("*/v*.yaml") if p.is_file())


def check_folder(root: Path) -> tuple[list[tuple[Path, RubricDefinition]], list[RubricError]]:
    """Validate every rubric file under root."""
    good: list[tuple[Path, RubricDefinition]] = []
    errors: list[RubricError] = []
    files = discover(root)
    stray = sorted(p for p in root.glob("*/*.y*ml") if p not in files)
    for p in stray:
        errors.append(
            RubricError(_display(p), "", None, None, "rubric files must be named v<N>.yaml")
        )

    def earlier(slug: str, version: int) -> RubricDefinition | None:
        # A crosswalk in a file bridges from an earlier file of the same folder.
        found = root / slug / f"v{version}.yaml"
        if found not in files:
            return None
        d, _problems = validate_file(found, display=_display(found))
        return d if d is not None and d.status != RubricStatus.draft else None

    for p in files:
        definition, problems = validate_file(p, display=_display(p), previous=earlier)
        errors.extend(problems)
        if definition is not None:
            good.append((p, definition))
    return good, errors


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- loading into the database --------------------------------------------------------------


@dataclass
class SyncReport:
    """What a load did."""

    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)


def sync_rubrics(engine: Engine, root: Path = RUBRICS_DIR) -> SyncReport:
    """Insert new versions, verify published ones; raises RubricProblems and changes nothing
    if any file is invalid or a published version's content changed."""
    good, errors = check_folder(root)
    if errors:
        raise RubricProblems(errors)
    for attempt in range(3):
        try:
            with Session(engine) as session:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
                if engine.dialect.name == "postgresql":
                    # App servers starting together load one at a time; the rest then verify.
                    session.connection().execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOAD_LOCK}
                    )
                report = sync_session(session, good)
                session.commit()
                return report
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def sync_session(session: Session, files: list[tuple[Path, RubricDefinition]]) -> SyncReport:
    """Apply validated files to the database in this session (flush only)."""
    report = SyncReport()
    errors: list[RubricError] = []
    existing = {(r.slug, r.version): r for r in session.exec(select(RubricVersion))}
    for path, d in files:
        label = f"{d.slug} v{d.version}"
        digest = d.content_hash()
        row = existing.get((d.slug, d.version))
        now = utcnow()
        if row is None:
            session.add(
                RubricVersion(
                    slug=d.slug,
                    version=d.version,
                    title=d.title,
                    status=d.status,
                    content_hash=digest,
                    content=d.model_dump(mode="json"),
                    published_at=now if d.status != RubricStatus.draft else None,
                    retired_at=now if d.status == RubricStatus.retired else None,
                    change_seq=next_seq(session),
                )
            )
            report.inserted.append(label)
            continue
        if row.status != RubricStatus.draft and row.content_hash != digest:
            errors.append(
                RubricError(
                    _display(path),
                    "",
                    None,
                    None,
                    f"{label} was published with content hash {row.content_hash[:12]} but the "
                    f"file now hashes to {digest[:12]}. Published versions are immutable: restore "
                    f"the file and put the change in a new version "
                    f"(walkthrough rubrics new-version {d.slug}).",
                )
            )
            continue
        if row.status != RubricStatus.draft and d.status == RubricStatus.draft:
            errors.append(
                RubricError(
                    _display(path),
                    "status",
                    None,
                    None,
                    f"{label} is {row.status.value}; it cannot go back to draft.",
                )
            )
            continue
        if row.content_hash == digest and row.status == d.status:
            report.verified.append(label)
            continue
        if row.status == RubricStatus.draft and d.status != RubricStatus.draft:
            row.published_at = now
        if row.status != RubricStatus.retired and d.status == RubricStatus.retired:
            row.retired_at = now
        row.status, row.title, row.content_hash = d.status, d.title, digest
        row.content = d.model_dump(mode="json")
        row.change_seq = next_seq(session)
        session.add(row)
        report.updated.append(label)
    if errors:
        raise RubricProblems(errors)
    session.flush()
    return report


def next_version_file(root: Path, slug: str) -> Path:
    """Copy the newest version of a rubric to v<N+1>.yaml as a draft; returns the new file."""
    folder = root / slug
    versions = sorted((int(p.stem[1:]), p) for p in folder.glob("v*.yaml") if p.stem[1:].isdigit())
    if not versions:
        raise FileNotFoundError(f"no versions of '{slug}' under {folder}")
    number, latest = versions[-1]
    target = folder / f"v{number + 1}.yaml"
    lines = latest.read_text(encoding="utf-8").splitlines(keepends=True)
    out = []
    for line in lines:
        if line.startswith("version:"):
            line = f"version: {number + 1}\n"
        elif line.startswith("status:"):
            line = "status: draft\n"
        out.append(line)
    with target.open("x", encoding="utf-8") as fh:
        fh.write("".join(out))
    return target


# --- comparing versions -----------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One field of an item that differs between two versions."""

    field: str
    old: str
    new: str


@dataclass(frozen=True)
class ItemChange:
    """How one item differs: added, removed, reworded, scale_changed, kind_changed, moved."""

    key: str
    title: str
    changes: tuple[str, ...]
    fields: tuple[FieldChange, ...] = ()


def compare_versions(old: RubricDefinition, new: RubricDefinition) -> list[ItemChange]:
    """Items added, removed, reworded or with a changed scale, in the newer version's order."""
    old_items = {item.key: (section, item) for section, item in old.items()}
    new_items = {item.key: (section, item) for section, item in new.items()}
    result: list[ItemChange] = []
    for key, (section, item) in new_items.items():
        if key not in old_items:
            result.append(ItemChange(key, item.title, ("added",)))
            continue
        old_section, old_item = old_items[key]
        changes, fields = _item_differences(old_item, item)
        if old_section.key != section.key:
            changes.append("moved")
            fields.append(FieldChange("section", old_section.title, section.title))
        if changes:
            result.append(ItemChange(key, item.title, tuple(changes), tuple(fields)))
    for key, (_section, item) in old_items.items():
        if key not in new_items:
            result.append(ItemChange(key, item.title, ("removed",)))
    return result


def _item_differences(old: Any, new: Any) -> tuple[list[str], list[FieldChange]]:
    changes: list[str] = []
    fields: list[FieldChange] = []
    if old.kind != new.kind:
        return ["kind_changed"], [FieldChange("kind", old.kind, new.kind)]
    for name in ("title", "prompt"):
        if getattr(old, name) != getattr(new, name):
            fields.append(FieldChange(name, getattr(old, name) or "", getattr(new, name) or ""))
    if isinstance(old, ScaleItem) and isinstance(new, ScaleItem):
        old_levels = {lv.value: lv for lv in old.levels}
        new_levels = {lv.value: lv for lv in new.levels}
        for value in sorted(old_levels.keys() & new_levels.keys()):
            for name in ("label", "descriptor"):
                before, after = getattr(old_levels[value], name), getattr(new_levels[value], name)
                if before != after:
                    fields.append(FieldChange(f"level {value} {name}", before, after))
        scale_changed = list(old_levels) != list(new_levels)
        if old.allow_not_observed != new.allow_not_observed:
            scale_changed = True
            fields.append(
                FieldChange(
                    "not observed", _yes(old.allow_not_observed), _yes(new.allow_not_observed)
                )
            )
        if list(old_levels) != list(new_levels):
            fields.append(
                FieldChange(
                    "levels",
                    ", ".join(str(v) for v in old_levels),
                    ", ".join(str(v) for v in new_levels),
                )
            )
        if scale_changed:
            changes.append("scale_changed")
    if isinstance(old, CountItem) and isinstance(new, CountItem) and old.max != new.max:
        changes.append("scale_changed")
        fields.append(FieldChange("max", str(old.max or "none"), str(new.max or "none")))
    if isinstance(old, ParticipationItem) and isinstance(new, ParticipationItem):
        for name in ("talk_types", "teacher_moves", "groups"):
            before = ", ".join(c.label for c in getattr(old, name))
            after = ", ".join(c.label for c in getattr(new, name))
            if [c.key for c in getattr(old, name)] != [c.key for c in getattr(new, name)]:
                fields.append(FieldChange(f"codes: {name.replace('_', ' ')}", before, after))
                if "scale_changed" not in changes:
                    changes.append("scale_changed")
    if any(not f.field.startswith(("levels", "not observed", "max", "codes")) for f in fields):
        changes.insert(0, "reworded")
    return changes, fields


def _yes(flag: bool) -> str:
    return "allowed" if flag else "not allowed"
