"""The `template` factory's bounded Jinja2 sandbox.

Every operation that can make a big value from small ones is checked against the size of its
result, computed from its arguments before it runs: the operators `*`, `**`, `+`, `%` and `~`,
the filters and str/bytes/list/dict methods that take a width, a count or a second text,
`str.format`, block buffers (macros, `{% set %}` and `{% filter %}` blocks) and the text of
each `{{ }}`. A string, list or text of a value is at most MAX_ITEMS items or characters, an
integer at most MAX_INT_BITS bits. Operations whose result is at most a few times their input
(upper, escape, hex, encode...) are checked after they run, so the next step refuses.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from functools import wraps
from typing import Any

MAX_ITEMS = 10_000_000  # characters of a string or text, items of a list/tuple/dict
MAX_INT_BITS = 100_000  # an integer made by ** or *
MAX_OUTPUT = 64 << 20  # characters of one rendered file


class TemplateLimit(Exception):
    pass


def _refuse(what: str, size: int, limit: int = MAX_ITEMS, unit: str = "items") -> None:
    if size > limit:
        raise TemplateLimit(f"{what} would make {size:,} {unit} (limit {limit:,})")


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple | range) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def text_size(value: Any, nested: bool = False) -> int:
    """An upper bound of len(str(value)) (of repr(value) when `nested`), counted only up to
    just past MAX_ITEMS, so that checking a huge list costs no more than the limit."""
    total = 0
    stack: list[Iterator[Any]] = [iter([value])]
    while stack and total <= MAX_ITEMS:
        item = next(stack[-1], stack)
        if item is stack:
            stack.pop()
            continue
        top = len(stack) == 1 and not nested
        total += 0 if top else 2  # brackets or ", "
        if isinstance(item, str):  # repr escapes a character into at most 10
            total += len(item) if top else len(item) * (2 if item.isascii() else 10)
        elif isinstance(item, bytes):
            total += len(item) * 4 + 1
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, float):
            total += 330  # '%f' of 1e308
        elif isinstance(item, Mapping):
            stack.append(x for kv in item.items() for x in kv)
        elif isinstance(
            item, list | tuple | set | frozenset | range | KeysView | ValuesView | ItemsView
        ):
            stack.append(iter(item))
        elif type(item).__name__ == "Namespace":  # repr shows its attributes
            stack.append(iter([object.__getattribute__(item, "_Namespace__attrs")]))
        else:
            total += len(repr(item))
    return total


def _check_text(what: str, value: Any, nested: bool = False) -> int:
    size = text_size(value, nested)
    if size > MAX_ITEMS:
        raise TemplateLimit(f"{what}: the text of a value is over {MAX_ITEMS:,} characters")
    return size


def check_result(what: str, value: Any) -> Any:
    """After an operation that makes at most a few times its input: refuse an oversized result
    (memory stays within a small multiple of the limit)."""
    if isinstance(value, str | bytes | list | tuple | dict):
        _refuse(what, len(value))
    return value


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse a `*`, `**`, `+` or `%` whose result would be over the limits, before computing it."""
    if operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            bits = left.bit_length() + right.bit_length()
            _refuse("'*'", bits, MAX_INT_BITS, "bits")
        for seq, n in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and isinstance(n, int):
                _refuse("'*'", size * max(n, 0))
    elif operator == "+":
        a, b = _size(left), _size(right)
        if a is not None and b is not None:
            _refuse("'+'", a + b)
    elif operator == "**" and isinstance(left, int) and isinstance(right, int):
        if right > 0 and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateLimit(f"'**' result over {MAX_INT_BITS:,} bits")
    elif operator == "%" and isinstance(left, str | bytes):
        _refuse("'%'", printf_size(left, right), unit="characters")


_PRINTF = re.compile(r"%(\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)


def printf_size(fmt: str | bytes, args: Any) -> int:
    """An upper bound of len(fmt % args): the format's text plus, per conversion, its width,
    its precision and its argument's text."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    mapping = args if isinstance(args, Mapping) else None
    positional = iter(args if isinstance(args, tuple) else (args,))
    total = len(text)
    for m in _PRINTF.finditer(text):
        key, width, precision, conversion = m.groups()
        if conversion == "%":
            continue
        numbers = [
            _int(next(positional, 0)) if n == "*" else int(n[:10] or 0) if n else 0
            for n in (width, precision)
        ]
        if key is not None and mapping is not None:
            arg = mapping.get(key[1:-1])
        else:
            arg = next(positional, None)
        total += sum(abs(n) for n in numbers) + text_size(arg, conversion in "ra")
        if total > MAX_ITEMS:
            break
    return total


_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d*))?")


def format_field_size(value: Any, spec: str) -> int:
    """An upper bound of len(format(value, spec))."""
    m = _SPEC.match(spec)
    width, precision = (int(n[:10] or 0) for n in m.groups(default="")) if m else (0, 0)
    return max(width, precision + text_size(value)) + len(spec)


def _lines(s: str) -> int:
    return s.count("\n") + 1


def _wordwrap(a: dict[str, Any]) -> int:
    s, width, wrap = str(a["s"]), max(_int(a["width"]), 1), a["wrapstring"] or "\n"
    return len(s) + len(str(wrap)) * (len(s) // width + len(s.split()) + _lines(s))


def _replace_size(s: Any, old: Any, new: Any, count: Any) -> int:
    """len(s.replace(old, new, count)), computed without replacing."""
    s, old, new = (x if isinstance(x, str | bytes) else str(x) for x in (s, old, new))
    found = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(s) + found * max(len(new) - len(old), 0)


def _sized(items: Any) -> list[Any]:
    return list(items)


def _tojson(a: dict[str, Any]) -> int:
    indent = _int(a["indent"])
    _refuse("tojson's indent", indent, unit="characters")
    size = text_size(a["value"], nested=True)
    return size * 6 + (size * indent if indent else 0)  # \u escapes; a line per item


# filter -> an upper bound of its result's size from its (bound) arguments
FILTER_BOUNDS: dict[str, Callable[[dict[str, Any]], int]] = {
    "center": lambda a: max(text_size(a["value"]), _int(a["width"])),
    "indent": lambda a: (
        len(str(a["s"]))
        + _lines(str(a["s"]))
        * (len(a["width"]) if isinstance(a["width"], str) else _int(a["width"]))
    ),
    "wordwrap": _wordwrap,
    "truncate": lambda a: text_size(a["s"]) + text_size(a["end"]),
    "replace": lambda a: _replace_size(a["s"], a["old"], a["new"], a["count"]),
    "format": lambda a: printf_size(str(a["value"]), a["kwargs"] or a["args"]),
    "batch": lambda a: _int(a["linecount"]) if a["fill_with"] is not None else 0,
    "slice": lambda a: _int(a["slices"]),
    "tojson": _tojson,
}
# filters that make a text of their value (str() of a list can be far bigger than the list)
TEXT_FILTERS = frozenset(
    "capitalize e escape forceescape lower pprint safe string striptags title trim upper "
    "urlencode urlize wordcount xmlattr".split()
)


def _join_args(a: dict[str, Any]) -> None:
    a["value"] = items = _sized(a["value"])
    _refuse("join", sum(text_size(x) for x in items) + len(str(a["d"])) * len(items))


def _sum_args(a: dict[str, Any]) -> None:
    if isinstance(a["start"], list | tuple):  # sum of lists concatenates them
        a["iterable"] = items = _sized(a["iterable"])
        _refuse("sum", len(a["start"]) + sum(_size(x) or 0 for x in items))


ARG_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {"join": _join_args, "sum": _sum_args}


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` refusing, before it runs, a result over the limit; its result checked after."""
    signature = inspect.signature(func)
    bound = FILTER_BOUNDS.get(name)
    arg_check = ARG_CHECKS.get(name)
    # a pass_* filter gets the environment or context first; jinja's async_variant passes the
    # environment to a function whose signature does not show it
    passes = getattr(func, "jinja_pass_arg", None) is not None
    hidden = passes and getattr(inspect.unwrap(func), "jinja_pass_arg", None) is None
    names = [*signature.parameters, "", ""]
    value_name = names[1 if passes and not hidden else 0]

    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        what = f"filter '{name}'"
        if bound or arg_check or name in TEXT_FILTERS:
            call = signature.bind(*args[hidden:], **kwargs)
            call.apply_defaults()
            a = call.arguments
            if name in TEXT_FILTERS:
                _check_text(what, a[value_name])
            if arg_check:
                arg_check(a)
            if bound:
                _refuse(what, bound(a))
            args, kwargs = (*args[:hidden], *call.args), call.kwargs
        return check_result(what, func(*args, **kwargs))

    return run


def _method_bound(obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The size of a str/bytes/list/dict method's result (or of the object it grows)."""
    arg = args[0] if args else next(iter(kwargs.values()), None)
    if isinstance(obj, str | bytes):
        if name in ("ljust", "rjust", "center", "zfill"):
            return max(len(obj), _int(arg))
        if name == "expandtabs":
            tabs = obj.count("\t") if isinstance(obj, str) else obj.count(b"\t")
            return len(obj) + tabs * _int(8 if arg is None else arg)
        if name == "replace" and len(args) >= 2:
            return _replace_size(obj, args[0], args[1], args[2] if len(args) > 2 else -1)
        if name == "join":
            items = args[0]
            return sum(_size(x) or 0 for x in items) + len(obj) * len(items)
        if name == "translate" and isinstance(obj, str):
            table = arg.values() if isinstance(arg, dict) else arg
            if not isinstance(table, str | list | tuple | ValuesView):
                raise TemplateLimit("str.translate takes a dict, list or string table")
            return len(obj) * max([1, *(_size(v) or 1 for v in table)])
    elif isinstance(obj, list | dict):
        if name in ("append", "insert", "setdefault"):
            return len(obj) + 1
        if name in ("extend", "update"):
            return len(obj) + (_size(arg) or (len(arg) if isinstance(arg, dict) else 0))
    return None


def bounded_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check a method call from a template before it runs; the arguments to call it with."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str | bytes | list | dict):
        return args
    if name == "join" and args and isinstance(owner, str | bytes):
        args = (_sized(args[0]), *args[1:])  # a generator is read once: keep what is checked
    size = _method_bound(owner, name, args, kwargs)
    if size is not None:
        _refuse(f"{type(owner).__name__}.{name}", size)
    return args


def bounded_parts(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """The operands of `~`, refused if their texts together are over the limit."""
    total = 0
    for part in parts:
        total += text_size(part)
        _refuse("'~'", total, unit="characters")
    return parts


class BoundedBuffer(list[str]):
    """A block's output (macro, {% set %} or {% filter %} body), refused over the limit."""

    size = 0

    def append(self, text: str) -> None:
        self.size += len(text)
        _refuse("a block", self.size, unit="characters")
        super().append(text)

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.append(text)


def lipsum_bound(func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def run(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:
        _refuse("lipsum", _int(n) * (_int(max) + _int(min)) * 16, unit="characters")
        return func(n, html, min, max)

    return run


def _finalize(value: Any) -> Any:
    """Each `{{ }}`: the text of its value is checked before it is made."""
    _check_text("'{{ }}'", value)
    return value


def environment() -> Any:
    """A SandboxedEnvironment whose every growing operation is bounded (see the module doc)."""
    from functools import update_wrapper

    from jinja2 import StrictUndefined
    from jinja2.compiler import CodeGenerator, Frame
    from jinja2.nodes import Concat
    from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
    from markupsafe import Markup

    class Generator(CodeGenerator):
        def buffer(self, frame: Frame) -> None:
            frame.buffer = self.temporary_identifier()
            self.writeline(f"{frame.buffer} = environment.bounded_buffer()")

        def visit_Concat(self, node: Concat, frame: Frame) -> None:
            if frame.eval_ctx.volatile:
                join = "(markup_join if context.eval_ctx.volatile else str_join)"
            else:
                join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
            self.write(f"{join}(environment.bounded_parts((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write(")))")

    class Formatting:
        made = 0

        def vformat(self, fmt: str, args: Any, kwargs: Any) -> str:
            self.made = len(fmt)
            return super().vformat(fmt, args, kwargs)  # type: ignore[misc, no-any-return]

        def convert_field(self, value: Any, conversion: str | None) -> Any:
            if conversion:
                _check_text("str.format", value, nested=True)
            return super().convert_field(value, conversion)  # type: ignore[misc]

        def format_field(self, value: Any, spec: str) -> Any:
            self.made += format_field_size(value, spec)
            _refuse("str.format", self.made, unit="characters")
            return super().format_field(value, spec)  # type: ignore[misc]

    class Formatter(Formatting, SandboxedFormatter):
        pass

    class EscapeFormatter(Formatting, SandboxedEscapeFormatter):
        pass

    class Bounded(SandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "+", "%"])
        code_generator_class = Generator
        bounded_buffer = BoundedBuffer
        bounded_parts = staticmethod(bounded_parts)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            check_binop(operator, left, right)
            return check_result(f"'{operator}'", super().call_binop(context, operator, left, right))

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            args = bounded_call(__obj, args, kwargs)
            result = super().call(__context, __obj, *args, **kwargs)
            return check_result(getattr(__obj, "__name__", "a call"), result)

        def wrap_str_format(self, value: Any) -> Any:
            if super().wrap_str_format(value) is None:
                return None
            text = value.__self__
            formatter: Formatting = (
                EscapeFormatter(self, escape=text.escape)
                if isinstance(text, Markup)
                else Formatter(self)
            )
            is_map = value.__name__ == "format_map"

            def run(*args: Any, **kwargs: Any) -> Any:
                if is_map:
                    if kwargs or len(args) != 1:
                        raise TypeError("format_map() takes exactly one argument")
                    made = formatter.vformat(text, (), args[0])
                else:
                    made = formatter.vformat(text, args, kwargs)
                return check_result("str.format", type(text)(made))

            return update_wrapper(run, value)

    env = Bounded(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize
    )
    env.filters = {name: bounded_filter(name, f) for name, f in env.filters.items()}
    env.globals["lipsum"] = lipsum_bound(env.globals["lipsum"])  # type: ignore[arg-type]
    return env
