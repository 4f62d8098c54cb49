"""The crosswalk between versions of a rubric: which items of a newer version continue an
item of an older one (with its levels mapped), which changed meaning and which are new, and
so which earlier records a time series of the newer version may join.

A version states its crosswalk in its content (`crosswalk:` in the YAML format, see
docs/rubrics.md). A version without one (the shipped files, written before crosswalks) is
read as continuing every item of the version before it whose key, kind and scale are the
same; an item with the same key but another kind or scale changed; any other item is new.
"""

from dataclasses import dataclass

from app.rubrics.loader import CountItem, RubricDefinition, ScaleItem

CONTINUES, CHANGED, NEW = "continues", "changed", "new"


@dataclass(frozen=True)
class Link:
    """How one item of a newer version relates to the version before it."""

    key: str
    status: str  # continues, changed or new
    previous: str | None  # the older item it continues
    levels: dict[int, int] | None  # older level -> newer level; None: the same levels
    stated: bool  # written in the newer version's crosswalk (False: read from the keys)


@dataclass(frozen=True)
class Trace:
    """An older version's item that a newer version's item continues, possibly through the
    versions in between, with its levels mapped onto the newer item's."""

    version: int
    key: str
    levels: dict[int, int] | None  # that version's level -> the newer item's; None: the same


def bridged_from(new: RubricDefinition, older: list[int]) -> int | None:
    """The version `new` continues: its crosswalk's, or else the latest of `older` before it."""
    if new.crosswalk is not None:
        return new.crosswalk.from_version
    before = [v for v in older if v < new.version]
    return max(before) if before else None


def links(new: RubricDefinition, old: RubricDefinition) -> list[Link]:
    """Every item of `new`, in order, and how it relates to `old`."""
    old_items = {item.key: item for _section, item in old.items()}
    stated = new.crosswalk if new.crosswalk and new.crosswalk.from_version == old.version else None
    out: list[Link] = []
    for _section, item in new.items():
        if stated is not None:
            entry = next((e for e in stated.items if e.key == item.key), None)
            if entry is None:
                out.append(Link(item.key, NEW, None, None, True))
            else:
                previous = (entry.previous or entry.key) if entry.status == CONTINUES else None
                out.append(Link(item.key, entry.status, previous, entry.levels, True))
            continue
        before = old_items.get(item.key)
        if before is None:
            out.append(Link(item.key, NEW, None, None, False))
        elif _same_scale(before, item):
            out.append(Link(item.key, CONTINUES, item.key, None, False))
        else:
            out.append(Link(item.key, CHANGED, None, None, False))
    return out


def _same_scale(old: object, new: object) -> bool:
    if type(old) is not type(new):
        return False
    if isinstance(old, ScaleItem) and isinstance(new, ScaleItem):
        return [lv.value for lv in old.levels] == [lv.value for lv in new.levels] and (
            old.allow_not_observed == new.allow_not_observed
        )
    if isinstance(old, CountItem) and isinstance(new, CountItem):
        return old.max == new.max
    return True


def lineage(
    target: RubricDefinition, earlier: dict[int, RubricDefinition]
) -> dict[str, list[Trace]]:
    """For each item of `target`, the items of `earlier` versions it continues, newest first,
    following each version's bridge back until the item is new or changed there."""
    traced: dict[str, tuple[str, dict[int, int] | None]] = {
        item.key: (item.key, None) for _s, item in target.items()
    }
    out: dict[str, list[Trace]] = {key: [] for key in traced}
    current = target
    seen = {target.version}
    while traced:
        version = bridged_from(current, list(earlier))
        if version is None or version in seen or version not in earlier:
            break
        seen.add(version)
        previous = earlier[version]
        by_key = {link.key: link for link in links(current, previous)}
        still: dict[str, tuple[str, dict[int, int] | None]] = {}
        for target_key, (key, levels) in traced.items():
            link = by_key.get(key)
            if link is None or link.status != CONTINUES or link.previous is None:
                continue
            composed = _compose(link.levels, levels)
            out[target_key].append(Trace(previous.version, link.previous, composed))
            still[target_key] = (link.previous, composed)
        traced = still
        current = previous
    return out


def _compose(step: dict[int, int] | None, onward: dict[int, int] | None) -> dict[int, int] | None:
    """Older -> newer levels (`step`), then newer -> target (`onward`)."""
    if step is None:
        return onward
    if onward is None:
        return dict(step)
    return {old: onward[new] for old, new in step.items() if new in onward}


def origin(target: RubricDefinition, earlier: dict[int, RubricDefinition]) -> dict[str, str]:
    """For each item of `target`, a sentence on where its series starts."""
    traces = lineage(target, earlier)
    version = bridged_from(target, list(earlier))
    first: dict[str, Link] = {}
    if version is not None and version in earlier:
        first = {link.key: link for link in links(target, earlier[version])}
    out: dict[str, str] = {}
    for _section, item in target.items():
        trace = traces[item.key]
        if trace:
            oldest = trace[-1]
            mapped = " (levels mapped)" if any(t.levels for t in trace) else ""
            out[item.key] = (
                f"Continues v{oldest.version}"
                + (f" '{oldest.key}'" if oldest.key != item.key else "")
                + mapped
                + ": earlier visits are joined."
            )
        elif item.key in first and first[item.key].status == CHANGED:
            out[item.key] = (
                f"Changed in v{target.version}: not comparable with earlier versions, so the "
                "series starts here."
            )
        else:
            out[item.key] = f"New in v{target.version}: the series starts here."
    return out
