"""Pond path utilities: normalization and globbing. Pure functions, no I/O.

Pond paths are absolute, `/`-separated and purely lexical (there are no symlinks inside a
pond), so `..` is resolved textually. Names may contain any character except `/` and NUL.
A write refuses to create a name that copy-out could not recreate on a host filesystem or that
breaks line-based tools: control characters (newline, tab, ...) or more than 255 bytes of UTF-8
(`check_new_name`). Reads accept any stored name.

Glob syntax (matched one path part at a time, so nothing ever matches across a `/`):

- `*` matches any run of characters (including none) within one part;
- `?` matches exactly one character;
- `[abc]`, `[a-z]`, `[!abc]` (or `[^abc]`) match one character from / not from a class; a `[`
  with no closing `]` is a literal `[`. Use `[*]`, `[?]`, `[[]` to match those characters;
- `**` as a whole part matches zero or more whole parts (directories); inside a part (`a**b`)
  it is just two `*`;
- a trailing `/` means "the directory's contents": `/a/` is the same as `/a/*`. The pattern `/`
  on its own is the root itself here (a normalized path matches itself); a listing (the
  resolver's and PondFS's `glob`) takes `/` as the root's entries, like `/a/` (SPEC §3).

`*` and `?` also match names starting with `.`: pond has no hidden files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from duckpond.errors import InvalidPathError, clip

ROOT = "/"
_GLOBSTAR = "**"
MAX_NAME_BYTES = 255  # NAME_MAX of ext4, XFS, btrfs, APFS, NTFS (in UTF-16 units there)
# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_new_name(name: str) -> None:
    """Refuse a name a write may not create: control characters, more than MAX_NAME_BYTES
    bytes of UTF-8, or text that is not valid Unicode (lone surrogates from a host name)."""
    m = _CONTROL.search(name)
    if m:
        raise InvalidPathError(f"name contains a control character ({m.group()!r}): {clip(name)}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidPathError(f"name is not valid UTF-8: {clip(ascii(name))}") from None
    if size > MAX_NAME_BYTES:
        raise InvalidPathError(
            f"name is longer than {MAX_NAME_BYTES} bytes ({size} bytes of UTF-8): {clip(name)}"
        )


def _resolve(path: str, what: str) -> list[str]:
    """Split `path` into parts, resolving `.`/`..` and empty parts; reject NUL and escapes."""
    if "\0" in path:
        raise InvalidPathError(f"{what} contains a NUL character: {clip(path)}")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidPathError(f"path escapes /: {clip(path)}")
            parts.pop()
        else:
            parts.append(part)
    return parts


def _fmt(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def normalize(path: str) -> str:
    """Return the canonical absolute form of a pond path.

    Resolves `.` and `..`, collapses repeated slashes and drops a trailing slash. A relative
    path is taken relative to `/`, and the empty path is `/`.

    >>> normalize("a//b/./c/../d/")
    '/a/b/d'

    Raises InvalidPathError if the path contains NUL or `..` would climb above `/`.
    """
    return _fmt(_resolve(path, "path"))


def split(path: str) -> list[str]:
    """Parts of `path` after normalization; the root has none: `split("/a/b") == ["a", "b"]`."""
    return _resolve(path, "path")


def parent(path: str) -> str:
    """The directory containing `path`; the root is its own parent."""
    return _fmt(_resolve(path, "path")[:-1])


def basename(path: str) -> str:
    """The last part of `path`; `""` for the root."""
    parts = _resolve(path, "path")
    return parts[-1] if parts else ""


def join(*parts: str) -> str:
    """Join path pieces with `/` and normalize.

    Unlike `os.path.join`, an absolute piece does not restart the path: pond paths are always
    absolute, so a leading `/` on a later piece is just a separator
    (`join("/a", "/b") == "/a/b"`). `join()` is `/`.
    """
    return normalize("/".join(parts))


# --- globbing ---------------------------------------------------------------------------------

_MEMO_MAX = 4096  # directory paths whose match states a compiled pattern remembers


@dataclass(frozen=True)
class _Part:
    """One compiled pattern part: a literal name, `**`, or a regex for a single name."""

    literal: str | None = None  # set when the part matches exactly this one name
    regex: re.Pattern[str] | None = None
    globstar: bool = False
    has_syntax: bool = False  # any glob syntax at all, even `[*]` which matches one name

    @property
    def matches_any(self) -> bool:
        """True when every name matches (`**`, `*`)."""
        return self.globstar or (self.regex is not None and self.regex.pattern == ".*")

    def matches(self, name: str) -> bool:
        if self.literal is not None:
            return name == self.literal
        assert self.regex is not None
        return self.regex.fullmatch(name) is not None


def _class_end(part: str, i: int) -> int:
    """Index of the `]` closing the class opened at `part[i]`, or -1 if it is unclosed."""
    j = i + 1
    if j < len(part) and part[j] in "!^":
        j += 1
    if j < len(part) and part[j] == "]":  # a leading `]` is a member, not the close
        j += 1
    return part.find("]", j)


def _class_regex(body: str) -> tuple[str, str | None]:
    """Translate a class body to a regex; also return its char if it is a one-char escape."""
    negate = bool(body) and body[0] in "!^"
    if negate:
        body = body[1:]
    items: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = body[i], body[i + 2]
            if lo <= hi:  # a reversed range matches nothing, as in fnmatch
                items.append(f"{re.escape(lo)}-{re.escape(hi)}")
            i += 3
        else:
            items.append(re.escape(body[i]))
            i += 1
    if not items:
        return ("." if negate else "(?!)"), None
    regex = ("[^" if negate else "[") + "".join(items) + "]"
    # `[*]` is the idiom for a literal `*`: treat it as a literal so prefixes stay useful.
    single = body if not negate and len(body) == 1 else None
    return regex, single


def _compile_part(part: str) -> _Part:
    if part == _GLOBSTAR:
        return _Part(globstar=True, has_syntax=True)
    regex: list[str] = []
    literal: list[str] = []
    is_literal = True  # matches exactly one name (true even for `[*]`-style escapes)
    has_syntax = False
    i = 0
    while i < len(part):
        c = part[i]
        if c == "*":
            # Collapse runs of `*`: same meaning, and avoids pathological backtracking.
            if not regex or regex[-1] != ".*":
                regex.append(".*")
            is_literal, has_syntax = False, True
        elif c == "?":
            regex.append(".")
            is_literal, has_syntax = False, True
        elif c == "[" and (end := _class_end(part, i)) != -1:
            cls, single = _class_regex(part[i + 1 : end])
            regex.append(cls)
            has_syntax = True
            if single is None:
                is_literal = False
            else:
                literal.append(single)
            i = end
        else:
            regex.append(re.escape(c))
            literal.append(c)
        i += 1
    if is_literal:
        return _Part(literal="".join(literal), has_syntax=has_syntax)
    # DOTALL: names may contain newlines, and `*`/`?` must match them too.
    return _Part(regex=re.compile("".join(regex), re.DOTALL), has_syntax=True)


def _pattern_parts(pattern: str) -> list[str]:
    """Normalize a pattern into parts, expanding a trailing `/` to a final `*` part."""
    parts = _resolve(pattern, "pattern")
    if pattern.endswith("/") and pattern.strip("/"):
        parts.append("*")
    return parts


def has_glob(pattern: str) -> bool:
    """True if `pattern` uses any glob syntax (`*`, `?`, a closed `[...]`, or a trailing `/`).

    This is about syntax: `/a[*]` counts even though it matches only the name `a*`, because
    using it as a literal path would be wrong.
    """
    if "\0" in pattern:
        raise InvalidPathError(f"pattern contains a NUL character: {clip(pattern)}")
    if pattern.endswith("/") and pattern.strip("/"):
        return True
    return any(_compile_part(p).has_syntax for p in pattern.split("/") if p not in ("", ".", ".."))


@dataclass(frozen=True)
class GlobPattern:
    """A compiled glob. Build with `compile_glob`; see the module docstring for syntax.

    Matching semantics for `**`:

    - `/**` matches every path, including `/` itself;
    - `/**/*` matches every path except `/`;
    - `/a/**` matches `/a` and everything below it;
    - `/a/**/x` matches `/a/x`, `/a/b/x`, `/a/b/c/x`, ...
    """

    pattern: str  # the normalized pattern text (trailing `/` already expanded to `/*`)
    _parts: tuple[_Part, ...] = field(repr=False, compare=False)
    # Memos for matching many paths (a listing): the states after a directory path, and
    # the steps whose result does not depend on the name (every state `**`, `*` or done).
    _dir_states: dict[str, frozenset[int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _any_name_steps: dict[frozenset[int], frozenset[int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def literal_prefix(self) -> str:
        """The deepest leading directory path free of wildcards: where a walk should start.

        `/a/b/*/c` -> `/a/b`; `/**` -> `/`. For a pattern that matches exactly one path (see
        `is_literal`) it is that path. It is a real path, not a pattern: `[*]`-style escapes
        are decoded (`/x[*]/*` -> `/x*`).
        """
        names: list[str] = []
        for part in self._parts:
            if part.literal is None:
                break
            names.append(part.literal)
        return _fmt(names)

    @property
    def is_literal(self) -> bool:
        """True if the pattern matches exactly one path, namely `literal_prefix`."""
        return all(p.literal is not None for p in self._parts)

    def _advance(self, states: set[int], name: str) -> set[int]:
        """Consume one path part from every state (an index into the pattern parts)."""
        parts = self._parts
        out: set[int] = set()
        for i in states:
            if i == len(parts):
                continue
            part = parts[i]
            if part.globstar:
                out.add(i)  # `**` swallows this part and may swallow more
            elif part.matches(name):
                out.add(i + 1)
        return self._closure(out)

    def _closure(self, states: set[int]) -> set[int]:
        """Add the states reachable by letting `**` parts match zero directories."""
        parts = self._parts
        todo = list(states)
        while todo:
            i = todo.pop()
            if i < len(parts) and parts[i].globstar and i + 1 not in states:
                states.add(i + 1)
                todo.append(i + 1)
        return states

    def _run(self, path: str) -> set[int]:
        # Fast split: callers pass normalized paths, often many of them during a walk.
        states = self._closure({0})
        for name in path.split("/"):
            if name:
                states = self._advance(states, name)
                if not states:
                    break
        return states

    # A walk matches incrementally: the states after a directory, stepped by each child's
    # name, instead of running every path from the root.
    def states_of(self, path: str) -> set[int]:
        return self._run(path)

    def step(self, states: set[int], name: str) -> set[int]:
        return self._advance(states, name)

    def accepts(self, states: set[int]) -> bool:
        return len(self._parts) in states

    def match(self, path: str) -> bool:
        """True if the normalized absolute `path` matches the whole pattern."""
        parent, _, name = path.rpartition("/")
        states = self._dir_states.get(parent)
        if states is None:
            if len(self._dir_states) >= _MEMO_MAX:
                self._dir_states.clear()
            states = self._dir_states[parent] = frozenset(self._run(parent))
        if name:
            states = self._step_memo(states, name)
        return len(self._parts) in states

    def _step_memo(self, states: frozenset[int], name: str) -> frozenset[int]:
        after = self._any_name_steps.get(states)
        if after is not None:
            return after
        after = frozenset(self._advance(set(states), name))
        parts = self._parts
        if all(i == len(parts) or parts[i].matches_any for i in states):
            self._any_name_steps[states] = after
        return after

    def could_match_below(self, path: str) -> bool:
        """True if some path strictly below directory `path` might match: lets walks prune."""
        return any(i < len(self._parts) for i in self._run(path))


def compile_glob(pattern: str) -> GlobPattern:
    """Compile a glob pattern (normalized like a path; `..` escaping `/` is an error).

    `..` is resolved lexically even after a wildcard: `/a/*/../b` is `/a/b`.
    """
    parts = _pattern_parts(pattern)
    return GlobPattern(_fmt(parts), tuple(_compile_part(p) for p in parts))
