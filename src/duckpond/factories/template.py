"""`template`: one rendered text file per matched node (Jinja2, sandboxed).

Bounded: a template is one self-contained text (include, import and extends are refused),
every operation that grows a value is checked before it runs (template_limits), `range` is
capped by the sandbox (100,000), macro recursion by Python's stack, and the output by
MAX_OUTPUT characters; each limit ends the render with a one-line error naming it.
"""

from __future__ import annotations

from typing import Any

from .. import paths
from ..errors import FactoryError
from .base import DATA, Factory, Fields
from .live import (
    BuildContext,
    LiveData,
    LiveDir,
    LiveFile,
    LiveNode,
    captures,
    digest,
    pattern_path,
    schema_fields,
    substitute,
)
from .template_limits import MAX_OUTPUT, TemplateLimit, environment


def _check_self_contained(env: Any, source: str) -> None:
    """Refuse include/import/extends: a template reads nothing but its context."""
    from jinja2 import nodes

    for node in env.parse(source).find_all((nodes.Include, nodes.Import, nodes.FromImport)):
        raise TemplateLimit(f"line {node.lineno}: include and import are not allowed")
    for node in env.parse(source).find_all(nodes.Extends):
        raise TemplateLimit(f"line {node.lineno}: extends is not allowed")


def render(source: str, context: dict[str, Any]) -> str:
    """Render within the limits; TemplateLimit (a clear reason) or jinja2's TemplateError."""
    env = environment()
    _check_self_contained(env, source)
    parts: list[str] = []
    size = 0
    try:
        for chunk in env.from_string(source).generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateLimit(f"output over {MAX_OUTPUT:,} characters")
            parts.append(chunk)
    except RecursionError:
        raise TemplateLimit("recursion too deep (a macro calling itself?)") from None
    except OverflowError as e:  # the sandbox's range cap, or a number too big
        raise TemplateLimit(" ".join(str(e).split())) from None
    except MemoryError:
        raise TemplateLimit("out of memory") from None
    return "".join(parts)


class Template(Factory):
    name = "template"
    kind = DATA
    file_type = "dir:dynamic"
    description = (
        "A directory of text files, one per node matching `in_pattern`, named by "
        "`out_pattern` ($0, $1... = the wildcards' matches), rendered from the Jinja2 "
        "`template` with `path`, `name`, `captures` and `schema` [{name, type}] in context."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            "in_pattern": f.get("in_pattern", str, required=True),
            "out_pattern": f.get("out_pattern", str, required=True),
            "template": f.get("template", str, required=True),
        }
        f.done()
        pattern_path(out["in_pattern"])
        if not out["out_pattern"] or "/" in out["out_pattern"]:
            raise FactoryError(f"{self.name}: 'out_pattern' must be one name (like $0.md)")
        from jinja2 import TemplateSyntaxError

        try:
            _check_self_contained(environment(), out["template"])
        except TemplateSyntaxError as e:
            raise FactoryError(f"{self.name}: template line {e.lineno}: {e.message}") from None
        except TemplateLimit as e:
            raise FactoryError(f"{self.name}: template {e}") from None
        return out

    def build(self, config: dict[str, Any], ctx: BuildContext) -> RenderedDir:
        pattern = pattern_path(config["in_pattern"])
        out: dict[str, tuple[LiveNode, list[str]]] = {}
        for node in ctx.glob(pattern):
            caps = captures(pattern, node.path)
            name = substitute(config["out_pattern"], caps)
            if not name or "/" in name or name in (".", ".."):
                raise FactoryError(f"{ctx.path}: out_pattern gives {name!r} for {node.path}")
            if name in out:
                raise FactoryError(
                    f"{ctx.path}: {out[name][0].path} and {node.path} both render to '{name}'"
                )
            out[name] = (node, caps)
        return RenderedDir(ctx, config, out)


class RenderedDir(LiveDir):
    def __init__(
        self, ctx: BuildContext, config: dict[str, Any], out: dict[str, tuple[LiveNode, list[str]]]
    ) -> None:
        self.ctx = ctx
        self.path = ctx.path
        self.config = config
        self.out = out

    def key(self) -> str:
        return digest(self.config, [(n, s.path, s.key()) for n, (s, _) in sorted(self.out.items())])

    def names(self) -> list[str]:
        return sorted(self.out)

    def child(self, name: str) -> LiveNode | None:
        if name not in self.out:
            return None
        source, caps = self.out[name]
        return Rendered(self, name, source, caps)


class Rendered(LiveData):
    def __init__(self, parent: RenderedDir, name: str, source: LiveNode, caps: list[str]) -> None:
        self.path = paths.join(parent.path, name)
        self.file_type = "file:data:dynamic"
        self.factory = Template.name
        self.version = getattr(parent, "version", 0)
        self.size = 0
        self.template = parent.config["template"]
        self.source = source
        self.caps = caps

    def key(self) -> str:
        return digest(self.template, self.source.key(), self.caps)

    def read_bytes(self) -> bytes:
        from jinja2 import TemplateError

        schema = schema_fields(self.source.schema()) if isinstance(self.source, LiveFile) else []
        context = {
            "path": self.source.path,
            "name": paths.basename(self.source.path),
            "captures": self.caps,
            "schema": schema,
            "fields": schema,
            "output": self.path,
        }
        try:
            text = render(self.template, context)
        except (TemplateError, TemplateLimit) as e:
            raise FactoryError(f"{self.path}: template failed: {e}") from None
        return str(text).encode()


FACTORY = Template()
