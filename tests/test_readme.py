"""The README's family tables are the registry's (regenerate with `mlplab models --markdown --domain D`)."""

from __future__ import annotations

import re

from mlplab.models import registry
from tests.conftest import REPO

BLOCK = re.compile(r"<!-- families: (\w+) \(generated[^)]*\) -->\n(.*?)\n<!-- /families -->", re.DOTALL)


def test_readme_family_tables_are_generated_from_the_registry():
    blocks = dict(BLOCK.findall((REPO / "README.md").read_text()))
    registry.families()  # imports every family package, with the domains some of them register
    assert set(blocks) == set(registry.DOMAINS), "every domain has its table in the README"
    recipes = registry.recipes_by_family(REPO / "configs")
    for domain, table in blocks.items():
        assert table == registry.markdown_table(domain, recipes), (
            f"the README's {domain} table is out of date: mlplab models --markdown --domain {domain}"
        )


def test_every_recipe_names_a_registered_family():
    by_family = registry.recipes_by_family(REPO / "configs")
    listed = {recipe for recipes in by_family.values() for recipe in recipes}
    recipes = {
        str(path.relative_to(REPO / "configs").with_suffix(""))
        for path in (REPO / "configs").rglob("*.yaml")
        if path.parent.name not in ("trainer", "sweeps", "logger")
    }
    assert recipes == listed
