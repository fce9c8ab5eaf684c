"""The Jinja2 environment over the package's templates (autoescaped, strict): one definition for
the class page and the model card."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2 import Environment


def template_environment(**globals_: object) -> Environment:
    """A new environment over ``lof/templates`` with ``globals_`` available to every template."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("lof", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(globals_)
    return env
