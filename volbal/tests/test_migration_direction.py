"""The migrations follow the direction of the code
(docs/architecture.md#layers-and-the-direction-of-imports): no migration of an app depends on a
migration of an app above it, so each layer's tables can be built without those of the layers
above (the log without positions and orders, positions without orders)."""

from __future__ import annotations

from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db.migrations.loader import MigrationLoader

# Lowest first, by app label. Django's own apps and the project's plumbing (volbal) are the
# floor; apps not named here (third-party ones) may sit anywhere.
LAYERS = [
    {"volbal", "contenttypes", "auth", "admin", "sessions"},
    {"events"},
    {"positions"},
    {"orders"},
    {"research", "portfolios"},  # positions.research: the research jobs; the portfolios' room
]
RANK = {label: rank for rank, labels in enumerate(LAYERS) for label in labels}


def upward_dependencies(graph) -> list[str]:
    found = []
    for app, name in sorted(graph.nodes):
        if app not in RANK:
            continue
        for parent_app, parent_name in sorted(p.key for p in graph.node_map[(app, name)].parents):
            if parent_app in RANK and RANK[parent_app] > RANK[app]:
                found.append(f"{app}.{name} depends on {parent_app}.{parent_name}")
    return found


def test_every_project_app_is_placed():
    project = {config.label for config in apps.get_app_configs()
               if Path(config.path).is_relative_to(settings.BASE_DIR)
               and "site-packages" not in Path(config.path).parts}
    assert project <= set(RANK), f"apps not in LAYERS: {sorted(project - set(RANK))}"


def test_no_migration_depends_on_a_layer_above_its_app():
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    assert upward_dependencies(graph) == []
