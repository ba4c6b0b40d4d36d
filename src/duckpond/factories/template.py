"""`template`: one rendered text file per matched node (Jinja2, sandboxed).

Bounded: a template is one self-contained text (include, import and extends are refused),
`*`, `**` and `+` refuse results over MAX_ITEMS items (or integers over MAX_INT_BITS bits),
`range` is capped by the sandbox (100,000), macro recursion by Python's stack, and the output
by MAX_OUTPUT characters; each limit ends the render with a one-line error naming it.
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
from .registry import register

MAX_ITEMS = 10_000_000  # characters of a string or items of a list/tuple made by * + **
MAX_INT_BITS = 100_000  # an integer ** result's size
MAX_OUTPUT = 64 << 20  # characters of one rendered file


class _TemplateLimit(Exception):
    pass


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple | range) else None


def _bounded_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse a `*`, `**` or `+` whose result would be over the limits, before computing it."""
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and isinstance(n, int) and size * max(n, 0) > MAX_ITEMS:
                raise _TemplateLimit(f"'*' would make {size * n:,} items (limit {MAX_ITEMS:,})")
    elif operator == "+":
        a, b = _size(left), _size(right)
        if a is not None and b is not None and a + b > MAX_ITEMS:
            raise _TemplateLimit(f"'+' would make {a + b:,} items (limit {MAX_ITEMS:,})")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int):
        if right > 0 and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
            raise _TemplateLimit(f"'**' result over {MAX_INT_BITS:,} bits")


def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    class Bounded(SandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "+"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _bounded_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

    return Bounded(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _check_self_contained(env: Any, source: str) -> None:
    """Refuse include/import/extends: a template reads nothing but its context."""
    from jinja2 import nodes

    for node in env.parse(source).find_all((nodes.Include, nodes.Import, nodes.FromImport)):
        raise _TemplateLimit(f"line {node.lineno}: include and import are not allowed")
    for node in env.parse(source).find_all(nodes.Extends):
        raise _TemplateLimit(f"line {node.lineno}: extends is not allowed")


def render(source: str, context: dict[str, Any]) -> str:
    """Render within the limits; _TemplateLimit (a clear reason) or jinja2's TemplateError."""
    env = _environment()
    _check_self_contained(env, source)
    parts: list[str] = []
    size = 0
    try:
        for chunk in env.from_string(source).generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise _TemplateLimit(f"output over {MAX_OUTPUT:,} characters")
            parts.append(chunk)
    except RecursionError:
        raise _TemplateLimit("recursion too deep (a macro calling itself?)") from None
    except OverflowError as e:  # the sandbox's range cap, or a number too big
        raise _TemplateLimit(" ".join(str(e).split())) from None
    except MemoryError:
        raise _TemplateLimit("out of memory") from None
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
            _check_self_contained(_environment(), out["template"])
        except TemplateSyntaxError as e:
            raise FactoryError(f"{self.name}: template line {e.lineno}: {e.message}") from None
        except _TemplateLimit as e:
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
        except (TemplateError, _TemplateLimit) as e:
            raise FactoryError(f"{self.path}: template failed: {e}") from None
        return str(text).encode()


register(Template())
