"""docs/api.md names every public name, and the README and docs link nothing outside the repository.

The names: `tinygrad_attn.__all__`, `nn.__all__`, the public names of `optim` and `functional` (their
`__all__`, or else every function and class they define whose name has no leading underscore), every
public attribute of `Tensor`, the functions of `viz`, and every subcommand of `tinygrad-attn`. A name
counts as documented when a code span starts with it, qualified or not: `nn.Linear(...)`, `x.sum(...)`.
"""

import inspect
import re
from pathlib import Path

import pytest

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import cli, nn, optim, viz

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def public_names(module) -> list[str]:
    """`module.__all__`, or the functions and classes it defines without a leading underscore."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, obj in vars(module).items() if not name.startswith("_")
            and (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__]


NAMES = sorted({*ta.__all__, *nn.__all__, *public_names(optim), *public_names(F), *public_names(viz),
                *(name for name in dir(ta.Tensor) if not name.startswith("_"))})


def documented(name: str, text: str) -> bool:
    return re.search(rf"`(?:[\w.]+\.)?{re.escape(name)}\b", text) is not None


def test_the_name_finder():
    assert documented("sum", "- `x.sum(axis=None)`: ...") and documented("Linear", "`nn.Linear(3, 4)`")
    assert not documented("sum", "`x.cumsum()`") and not documented("sum", "the sum of `x`")


@pytest.mark.parametrize("name", NAMES)
def test_every_public_name_is_in_the_api_reference(name):
    assert documented(name, API.read_text()), f"docs/api.md does not document `{name}`"


@pytest.mark.parametrize("command", sorted(cli.SUBCOMMANDS))
def test_every_command_is_in_the_api_reference(command):
    assert f"`tinygrad-attn {command}" in API.read_text(), f"docs/api.md does not document `tinygrad-attn {command}`"


def test_readme_links_the_api_reference():
    assert "](docs/api.md)" in (ROOT / "README.md").read_text()


LINK = re.compile(r"\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.M)      # [text](target) and [ref]: target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pages_link_nothing_outside_the_repository(page):
    text = page.read_text()
    assert "../shared" not in text, f"{page.name} mentions ../shared, which is outside the repository"
    for target in (a or b for a, b in LINK.findall(text)):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue                                           # a web address or an anchor on the same page
        resolved = (page.parent / target.split("#")[0]).resolve()
        assert resolved == ROOT or ROOT in resolved.parents, f"{page.name} links {target}, outside the repository"
