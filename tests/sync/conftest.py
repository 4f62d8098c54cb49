"""Helpers for sync tests: build push items like a device would."""

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import World


def payload(world: World, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "rubric_slug": "discourse-walkthrough",
        "rubric_version": 1,
        "teacher_id": world.teacher.id,
        "observed_at": "2026-11-20T09:15:00-06:00",
        "duration_seconds": 600,
        "status": "submitted",
        "values": {
            "task_visible": {"value": True},
            "students_explaining": {"value": 4, "evidence": "Maya explained why"},
            "overall_discourse": {"value": 3},
        },
        "notes": [{"minute": 2, "text": "Launch"}],
        "tags": ["fractions"],
        "overall_notes": "Good",
    }
    base.update(overrides)
    return base


def item(
    world: World, obs_id: uuid.UUID | str | None = None, base: int = 0, **overrides: Any
) -> dict[str, Any]:
    return {
        "id": str(obs_id or uuid.uuid4()),
        "base_revision": base,
        "payload": payload(world, **overrides),
    }


def push(
    client: TestClient, token: str, *items: dict[str, Any], device: str = "tablet-1"
) -> list[dict[str, Any]]:
    response = client.post(
        "/api/sync/push",
        json={"device_id": device, "items": list(items)},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200, response.text
    return response.json()["results"]
