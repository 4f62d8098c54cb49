"""Participation maps: who gets to talk in a lesson.

An observer lays out anonymous student markers (numbered, never named), then logs each
contribution with two taps: the marker, then its talk type. The value of a `participation`
item is the map: how many markers, how they were laid out, the district-defined grouping
label of a marker where the district uses them, and the contributions in the order they were
logged. Marker 0 is the teacher, when the rubric codes teacher talk moves.

The summary figures (the capture page computes the same ones in participation-core.js; both
are checked against the same hand-computed examples) are defined in docs/participation.md.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.rubrics.loader import MAX_MARKERS, ParticipationItem

TEACHER = 0
MAX_EVENTS = 5000  # a long lesson with a tap every two seconds
TOP = 3

CodeKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class TalkEvent(BaseModel):
    """One contribution: which marker (0 the teacher), its talk type, and the second of the
    lesson (from the capture page's lesson timer) it was logged at."""

    model_config = ConfigDict(extra="forbid")

    marker: int = Field(ge=0, le=MAX_MARKERS)
    talk: CodeKey
    # None: logged more than a day after the lesson began (an amendment), when the lesson
    # timer no longer says when it was said.
    at: int | None = Field(ge=0, le=24 * 3600)


class ParticipationMap(BaseModel):
    """The value of a participation item."""

    model_config = ConfigDict(extra="forbid")

    markers: int = Field(ge=0, le=MAX_MARKERS)
    per_row: int = Field(default=6, ge=1, le=12)
    # Marker number (as JSON object keys are text) -> grouping label key.
    groups: dict[Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,2}$")], CodeKey] = Field(
        default_factory=dict, max_length=MAX_MARKERS
    )
    events: list[TalkEvent] = Field(default_factory=list, max_length=MAX_EVENTS)


def problem(item: ParticipationItem, value: ParticipationMap) -> str | None:
    """What is wrong with a map for this item, naming the first bad event or label."""
    talk = {c.key for c in item.talk_types}
    moves = {c.key for c in item.teacher_moves}
    for index, event in enumerate(value.events, start=1):
        where = f"Contribution {index}"
        if event.marker == TEACHER:
            if not moves:
                return f"{where}: this map does not code the teacher's talk (marker 0)."
            if event.talk not in moves:
                listed = ", ".join(sorted(moves))
                return f"{where}: '{event.talk}' is not one of the teacher moves ({listed})."
        elif event.marker > value.markers:
            return f"{where}: marker {event.marker} is not on the map (it has {value.markers})."
        elif event.talk not in talk:
            return (
                f"{where}: '{event.talk}' is not one of the talk types ({', '.join(sorted(talk))})."
            )
    labels = {c.key for c in item.groups}
    for marker, label in value.groups.items():
        if not labels:
            return "This map has no grouping labels: the district has not turned them on."
        if not 1 <= int(marker) <= value.markers:
            return f"Grouping label for marker {int(marker)}, which is not on the map."
        if label not in labels:
            return f"Marker {int(marker)}: '{label}' is not one of the grouping labels."
    return None


def laid_out(value: Any) -> dict[str, Any] | None:
    """A stored value that is a map with markers; None for no map (not laid out, which every
    figure leaves out, as it leaves out an unanswered item)."""
    return value if isinstance(value, dict) and value.get("markers") else None


def headline(s: "Summary") -> str:
    """'4 contributions from 2 of 4 students': a map in one line."""
    plural = "" if s.contributions == 1 else "s"
    return f"{s.contributions} contribution{plural} from {s.speakers} of {s.students} students"


def describe(item: ParticipationItem, value: Any) -> str:
    """A map in words, for history and conflicts: totals, by talk type, by student."""
    if laid_out(value) is None:
        return "—"
    s = summarise(item, value)
    parts = [headline(s)]
    parts.append("by talk type: " + ", ".join(f"{label} {n}" for _k, label, n in s.by_talk))
    if s.by_move:
        parts.append("teacher: " + ", ".join(f"{label} {n}" for _k, label, n in s.by_move))
    parts.append("per student: " + ", ".join(str(n) for n in s.per_marker))
    return "; ".join(parts)


def gini(counts: list[int]) -> float | None:
    """The Gini coefficient of contributions per student: the mean absolute difference
    between every two students' counts, over twice the mean count. 0 when every student
    contributed equally; (n-1)/n when one student made every contribution. Undefined (None)
    with no students or no contributions."""
    n = len(counts)
    total = sum(counts)
    if n == 0 or total == 0:
        return None
    ordered = sorted(counts)
    # sum_{i,j} |x_i - x_j| = 2 * sum_i (2i - n + 1) x_(i), with x sorted ascending (i from 0)
    weighted = sum((2 * i - n + 1) * x for i, x in enumerate(ordered))
    return 2 * weighted / (2 * n * n * (total / n))


@dataclass
class GroupShare:
    """One grouping label's share of the students and of the contributions."""

    key: str
    label: str
    students: int
    contributions: int
    share_of_students: float | None
    share_of_contributions: float | None


@dataclass
class Summary:
    """One lesson's figures."""

    students: int
    contributions: int
    by_talk: list[tuple[str, str, int]]  # key, label, count (students' contributions)
    by_move: list[tuple[str, str, int]]  # the teacher's coded talk moves
    per_marker: list[int]  # contributions of marker 1..students
    speakers: int  # students who contributed at least once
    top_share: float | None  # the most active 3 students' share of contributions
    top_fifth: int  # how many students the top 20% is (at least 1)
    top_fifth_share: float | None
    gini: float | None
    groups: list[GroupShare] = field(default_factory=list)

    @property
    def speakers_share(self) -> float | None:
        return self.speakers / self.students if self.students else None

    @property
    def shades(self) -> list[int]:
        """Each marker's shade on the picture: 0 silent, up to 4 as often as the lesson's most
        active student (participation-core.js `shade`, the same rule)."""
        most = max(self.per_marker, default=0)
        return [
            0 if not n or not most else max(1, min(4, -(-4 * n // most))) for n in self.per_marker
        ]


def summarise(item: ParticipationItem, value: dict[str, Any] | None) -> Summary:
    """The figures of one map (a stored value, already validated; None for none)."""
    value = value or {}
    students = int(value.get("markers") or 0)
    events = [e for e in value.get("events") or [] if isinstance(e, dict)]
    per_marker = [0] * students
    talk: Counter[str] = Counter()
    moves: Counter[str] = Counter()
    for event in events:
        marker = event.get("marker")
        if marker == TEACHER:
            moves[event.get("talk", "")] += 1
        elif isinstance(marker, int) and 1 <= marker <= students:
            per_marker[marker - 1] += 1
            talk[event.get("talk", "")] += 1
    total = sum(per_marker)
    ranked = sorted(per_marker, reverse=True)
    fifth = max(1, -(-students // 5)) if students else 0
    groups: list[GroupShare] = []
    labels = value.get("groups") or {}
    if item.groups:
        for code in [*item.groups, None]:
            key = code.key if code else ""
            members = [m for m in range(1, students + 1) if labels.get(str(m), "") == key]
            if code is None and not members:
                continue
            said = sum(per_marker[m - 1] for m in members)
            groups.append(
                GroupShare(
                    key,
                    code.label if code else "No label",
                    len(members),
                    said,
                    len(members) / students if students else None,
                    said / total if total else None,
                )
            )
    return Summary(
        students=students,
        contributions=total,
        by_talk=[(c.key, c.label, talk[c.key]) for c in item.talk_types],
        by_move=[(c.key, c.label, moves[c.key]) for c in item.teacher_moves],
        per_marker=per_marker,
        speakers=sum(1 for x in per_marker if x),
        top_share=sum(ranked[:TOP]) / total if total else None,
        top_fifth=fifth,
        top_fifth_share=sum(ranked[:fifth]) / total if total else None,
        gini=gini(per_marker),
        groups=groups,
    )
