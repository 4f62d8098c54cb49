"""The structured rubric editor: a draft as a form and back, and its steps (add, remove, move
up or down). Every input is named by its field's path in the YAML format
(`sections[0].items[1].levels[2].label`), so the validator's errors land beside the input
they are about, and a bad save gives the form back exactly as typed.

Each item's crosswalk entry is edited beside the item (`sections[0].items[1].cw_status`,
`cw_previous`, `cw_levels`) and gathered into the version's `crosswalk` on the way back.
"""

import re
from typing import Any

KINDS = ("scale", "count", "check", "text", "participation")
# What the editor calls each kind (as the capture page does).
KIND_NAMES = {
    "scale": "scale",
    "count": "tally",
    "check": "look-for",
    "text": "notes field",
    "participation": "participation map",
}
# A participation map's code lists, and what the editor calls one entry of each.
CODE_LISTS = {
    "talk_types": "talk type",
    "teacher_moves": "teacher move",
    "groups": "grouping label",
}
_TOKEN = re.compile(r"([a-z_]+)|\[(\d{1,4})\]")
_BOOLEANS = {"evidence", "allow_not_observed", "share_with_teacher"}
_OPTIONAL = {"prompt", "description", "citation", "url", "max", "groups_meaning"}
_INTS = {"value", "max", "from_version", "version", "seats", "per_row"}
_TOP = {"title", "description", "source", "sections", "crosswalk"}


def _path(name: str) -> list[str | int] | None:
    """`sections[0].items[1].title` as ["sections", 0, "items", 1, "title"]; None for a name
    that is not such a path (or deeper than any field of the format)."""
    if len(name) > 200:
        return None
    parts: list[str | int] = []
    for segment in name.split("."):
        pos = 0
        for match in _TOKEN.finditer(segment):
            if match.start() != pos:
                return None
            parts.append(match.group(1) if match.group(1) else int(match.group(2)))
            pos = match.end()
        if pos != len(segment) or not segment:
            return None
    return parts if len(parts) <= 8 else None


def _put(root: dict[str, Any], path: list[str | int], value: str) -> None:
    node: Any = root
    for here in path[:-1]:
        child = node.get(here) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            child = {}  # a list too: keyed by index until _listed()
            node[here] = child
        node = child
    node[path[-1]] = value


def _listed(node: Any) -> Any:
    """Dicts keyed by index become lists, in index order."""
    if isinstance(node, dict):
        if node and all(isinstance(k, int) for k in node):
            return [_listed(node[k]) for k in sorted(node)]
        return {k: _listed(v) for k, v in node.items()}
    return node


def form_to_content(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """The form's fields as a rubric document (text left as typed, for the validator)."""
    root: dict[str, Any] = {}
    for name, value in fields:
        path = _path(name)
        if path is None or not path or path[0] not in _TOP:
            continue  # the CSRF token, the step, anything else
        _put(root, path, value)  # a later field of the same name wins (checkbox after hidden)
    content = _shaped(_listed(root))
    _typed(content)
    return _with_crosswalk(content)


_ITEM_FIELDS = {
    "key", "kind", "title", "prompt", "evidence", "allow_not_observed", "max", "share_with_teacher",
    "cw_status", "cw_previous", "cw_levels", "seats", "per_row", "groups_meaning",
}  # fmt: skip


def _texts(node: Any, names: set[str] | None = None) -> dict[str, str]:
    """The text fields of a mapping (all of them, or those named)."""
    if not isinstance(node, dict):
        return {}
    return {k: v for k, v in node.items() if isinstance(v, str) and (names is None or k in names)}


def _dicts(node: Any) -> list[dict[str, Any]]:
    return [n for n in node if isinstance(n, dict)] if isinstance(node, list) else []


def _shaped(data: Any) -> dict[str, Any]:
    """The document in the shape the format has, whatever names a hand-made form used: a
    mapping of text fields, `source` and `crosswalk` mappings, lists of sections, items and
    levels; anything else is left out (and so reported missing by the validator)."""
    data = data if isinstance(data, dict) else {}
    out: dict[str, Any] = _texts(data, {"title", "description"})
    out["source"] = _texts(data.get("source"), {"attribution", "citation", "url"})
    crosswalk = _texts(data.get("crosswalk"), {"from_version"})
    if crosswalk:
        out["crosswalk"] = crosswalk
    sections = []
    for section in _dicts(data.get("sections")):
        items = []
        for item in _dicts(section.get("items")):
            shaped: dict[str, Any] = _texts(item, _ITEM_FIELDS)
            if item.get("kind") == "scale" or "levels" in item:
                shaped["levels"] = [
                    _texts(level, {"value", "label", "descriptor"})
                    for level in _dicts(item.get("levels"))
                ]
            if item.get("kind") == "participation":
                for name in CODE_LISTS:
                    codes = [
                        _texts(c, {"key", "label", "description"}) for c in _dicts(item.get(name))
                    ]
                    if codes or name == "talk_types":
                        shaped[name] = codes
            items.append(shaped)
        sections.append({**_texts(section, {"key", "title", "description"}), "items": items})
    out["sections"] = sections
    return out


def _typed(node: Any) -> None:
    """Numbers and yes/no from their text; empty optional fields left out."""
    if isinstance(node, list):
        for child in node:
            _typed(child)
        return
    if not isinstance(node, dict):
        return
    for key in list(node):
        value = node[key]
        if isinstance(value, (dict, list)):
            _typed(value)
        elif key in _BOOLEANS:
            node[key] = value == "true"
        elif key in _OPTIONAL and value.strip() == "":
            del node[key]
        elif key in _INTS and re.fullmatch(r"\s*-?\d{1,9}\s*", value):
            node[key] = int(value)


def _levels_map(text: str) -> dict[int, int] | str:
    """ "1:1, 2:2, 3:3, 4:3" (or 1→1, 1=1) as a mapping; the text itself when unreadable."""
    out: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        match = re.fullmatch(r"(-?\d{1,9})\s*(?:->|→|:|=)\s*(-?\d{1,9})", part)
        if match is None:
            return text
        out[int(match.group(1))] = int(match.group(2))
    return out


def _with_crosswalk(content: dict[str, Any]) -> dict[str, Any]:
    crosswalk = content.get("crosswalk")
    entries: list[dict[str, Any]] = []
    for section in content.get("sections", []) or []:
        for item in section.get("items", []) if isinstance(section, dict) else []:
            if not isinstance(item, dict):
                continue
            status = item.pop("cw_status", None)
            previous = str(item.pop("cw_previous", "") or "").strip()
            levels = str(item.pop("cw_levels", "") or "").strip()
            if status is None or not isinstance(crosswalk, dict):
                continue
            entry: dict[str, Any] = {"key": item.get("key", ""), "status": status}
            if status == "continues" and previous and previous != item.get("key"):
                entry["previous"] = previous
            if status == "continues" and levels:
                entry["levels"] = _levels_map(levels)
            entries.append(entry)
    if isinstance(crosswalk, dict):
        crosswalk["items"] = entries
    return content


def field_names(content: dict[str, Any]) -> dict[str, str]:
    """The crosswalk's error paths, as the names of the inputs beside each item."""
    names: dict[str, str] = {}
    crosswalk = content.get("crosswalk") or {}
    index = {e.get("key"): n for n, e in enumerate(crosswalk.get("items", []) or [])}
    for s, section in enumerate(content.get("sections", []) or []):
        for i, item in enumerate(section.get("items", []) or []):
            n = index.get(item.get("key"))
            if n is None:
                continue
            here = f"sections[{s}].items[{i}]"
            for field, name in (("status", "cw_status"), ("key", "cw_status")):
                names[f"crosswalk.items[{n}].{field}"] = f"{here}.{name}"
            names[f"crosswalk.items[{n}].previous"] = f"{here}.cw_previous"
            names[f"crosswalk.items[{n}].levels"] = f"{here}.cw_levels"
    return names


def error_fields(content: dict[str, Any], errors: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each error's message under the name of the input it is about (a level-map entry
    under its item's level-map input)."""
    names = field_names(content)
    out: dict[str, list[str]] = {}
    for error in errors:
        field = str(error.get("field") or "")
        shown = names.get(field)
        if shown is None and field.startswith("crosswalk.items["):
            shown = names.get(re.sub(r"(\.levels)\[-?\d+\]$", r"\1", field))
        out.setdefault(shown or field, []).append(str(error.get("message", "")))
    return out


def crosswalk_of(content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each item's crosswalk entry by key, for the form."""
    crosswalk = content.get("crosswalk") or {}
    out: dict[str, dict[str, Any]] = {}
    for entry in crosswalk.get("items", []) or []:
        levels = entry.get("levels")
        shown = levels
        if isinstance(levels, dict):
            shown = ", ".join(f"{k}:{v}" for k, v in levels.items())
        out[str(entry.get("key"))] = {**entry, "levels": shown or ""}
    return out


# --- steps ------------------------------------------------------------------------------------


def _blank_item(kind: str, taken: set[str]) -> dict[str, Any]:
    n = 1
    while f"{kind}_{n}" in taken:
        n += 1
    item: dict[str, Any] = {"key": f"{kind}_{n}", "kind": kind, "title": ""}
    if kind == "scale":
        item["levels"] = [
            {"value": 1, "label": "", "descriptor": ""},
            {"value": 2, "label": "", "descriptor": ""},
        ]
        item["allow_not_observed"] = False
    if kind == "participation":
        item["talk_types"] = [
            {"key": "explains", "label": "Explains reasoning"},
            {"key": "question", "label": "Asks a question"},
            {"key": "builds", "label": "Builds on a peer"},
            {"key": "short", "label": "Short answer"},
        ]
        item["seats"], item["per_row"] = 24, 6
    item["evidence"] = kind not in ("text", "participation")
    return item


def _keys(content: dict[str, Any]) -> set[str]:
    return {
        str(item.get("key"))
        for section in content.get("sections", [])
        for item in section.get("items", [])
    }


def apply(content: dict[str, Any], step: str) -> str | None:
    """Do one step of the editor to the content in place; None when it is not a step (the
    form was changed by hand), else what was done, for the page to say."""
    parts = step[:100].split(":")
    sections: list[dict[str, Any]] = content.setdefault("sections", [])

    def index(text: str) -> int | None:
        return int(text) if re.fullmatch(r"[0-9]{1,4}", text) else None

    def section_at(text: str) -> dict[str, Any] | None:
        s = index(text)
        return sections[s] if s is not None and s < len(sections) else None

    def items_of(section: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = section.setdefault("items", [])
        return items

    def item_at(s_text: str, i_text: str) -> tuple[list[dict[str, Any]], int] | None:
        """A section's items and the index of one of them, from a step's text; None when
        either is not there."""
        section = section_at(s_text)
        items = items_of(section) if section is not None else []
        found = index(i_text)
        return (items, found) if found is not None and found < len(items) else None

    action = parts[0]
    if action == "add-section":
        taken = {str(s.get("key")) for s in sections}
        n = len(sections) + 1
        while f"section_{n}" in taken:
            n += 1
        sections.append(
            {"key": f"section_{n}", "title": "", "items": [_blank_item("check", _keys(content))]}
        )
        return "Added a section with one look-for: give both a title."
    if action in ("up-section", "down-section", "remove-section") and len(parts) == 2:
        if section_at(parts[1]) is None:
            return None
        s = int(parts[1])
        if action == "remove-section":
            if len(sections) == 1:
                return "A rubric keeps at least one section."
            sections.pop(s)
            return "Removed the section."
        t = s - 1 if action == "up-section" else s + 1
        if 0 <= t < len(sections):
            sections[s], sections[t] = sections[t], sections[s]
            return "Moved the section " + ("up." if action == "up-section" else "down.")
        return "The section is already " + ("first." if action == "up-section" else "last.")
    if action == "add-item" and len(parts) == 3 and parts[2] in KINDS:
        section = section_at(parts[1])
        if section is None:
            return None
        item = _blank_item(parts[2], _keys(content))
        items_of(section).append(item)
        crosswalk = content.get("crosswalk")
        if isinstance(crosswalk, dict):
            crosswalk.setdefault("items", []).append({"key": item["key"], "status": "new"})
        return f"Added a {KIND_NAMES[parts[2]]} at the end of the section: give it a title."
    if len(parts) >= 4 and action in ("add-code", "remove-code") and parts[3] in CODE_LISTS:
        at = item_at(parts[1], parts[2])
        if at is None:
            return None
        codes: list[dict[str, Any]] = at[0][at[1]].setdefault(parts[3], [])
        what = CODE_LISTS[parts[3]]
        if action == "add-code":
            codes.append({"key": "", "label": ""})
            return f"Added a {what}: give it a key and a label."
        k = index(parts[4]) if len(parts) == 5 else None
        if k is not None and k < len(codes):
            codes.pop(k)
            return f"Removed the {what}."
        return None
    if len(parts) >= 3 and action in ("up", "down", "remove", "add-level", "remove-level"):
        at = item_at(parts[1], parts[2])
        if at is None:
            return None
        items, i = at
        s = int(parts[1])
        if action == "remove":
            if len(items) == 1:
                return "A section keeps at least one item: remove the section instead."
            items.pop(i)
            return "Removed the item."
        if action in ("up", "down"):
            return _move(sections, s, i, -1 if action == "up" else 1)
        item = items[i]
        levels: list[dict[str, Any]] = item.setdefault("levels", [])
        if action == "add-level":
            values: list[int] = [v for lv in levels if isinstance(v := lv.get("value"), int)]
            levels.append({"value": max(values, default=0) + 1, "label": "", "descriptor": ""})
            return "Added a level at the top of the scale."
        k = index(parts[3]) if len(parts) == 4 else None
        if k is not None and k < len(levels):
            levels.pop(k)
            return "Removed the level."
    return None


def _move(sections: list[dict[str, Any]], s: int, i: int, by: int) -> str:
    """An item one place up or down; past the first or last of its section, into the
    section before or after."""
    items = sections[s]["items"]
    j = i + by
    if 0 <= j < len(items):
        items[i], items[j] = items[j], items[i]
        return "Moved the item " + ("up." if by < 0 else "down.")
    t = s + by
    if not 0 <= t < len(sections):
        return "The item is already " + ("first." if by < 0 else "last.")
    if len(items) == 1:
        return "A section keeps at least one item: move the section instead."
    item = items.pop(i)
    target = sections[t].setdefault("items", [])
    if by < 0:
        target.append(item)
    else:
        target.insert(0, item)
    return "Moved the item into the " + ("section before." if by < 0 else "next section.")


def tidy(content: dict[str, Any]) -> None:
    """The crosswalk lists only items that are still there, in order (after a step)."""
    crosswalk = content.get("crosswalk")
    if not isinstance(crosswalk, dict):
        return
    keys = [str(k) for k in _ordered_keys(content)]
    entries = {str(e.get("key")): e for e in crosswalk.get("items", []) or []}
    crosswalk["items"] = [entries[k] for k in keys if k in entries]


def _ordered_keys(content: dict[str, Any]) -> list[Any]:
    return [
        item.get("key")
        for section in content.get("sections", []) or []
        for item in section.get("items", []) or []
    ]


def input_names(content: dict[str, Any]) -> set[str]:
    """The name of every input the form shows for this content."""
    names = {"title", "description", "source.attribution", "source.citation", "source.url"}
    crosswalk = isinstance(content.get("crosswalk"), dict)
    for s, section in enumerate(content.get("sections", []) or []):
        here = f"sections[{s}]"
        names |= {f"{here}.key", f"{here}.title", f"{here}.description", f"{here}.items"}
        for i, item in enumerate(section.get("items", []) or []):
            at = f"{here}.items[{i}]"
            names |= {f"{at}.{f}" for f in ("key", "title", "prompt", "evidence", "kind")}
            if crosswalk:
                names |= {f"{at}.cw_status", f"{at}.cw_previous", f"{at}.cw_levels"}
            if item.get("kind") == "scale":
                names |= {f"{at}.allow_not_observed", f"{at}.levels"}
                for k, _level in enumerate(item.get("levels", []) or []):
                    names |= {f"{at}.levels[{k}].{f}" for f in ("value", "label", "descriptor")}
            if item.get("kind") == "count":
                names.add(f"{at}.max")
            if item.get("kind") == "text":
                names.add(f"{at}.share_with_teacher")
            if item.get("kind") == "participation":
                names |= {f"{at}.{f}" for f in ("seats", "per_row", "groups_meaning")}
                for name in CODE_LISTS:
                    names.add(f"{at}.{name}")
                    for k, _code in enumerate(item.get(name, []) or []):
                        names |= {f"{at}.{name}[{k}].{f}" for f in ("key", "label", "description")}
    return names
