"""Tests for duckpond.paths: normalization, path helpers and globbing."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duckpond.errors import InvalidPathError, PondError
from duckpond.paths import (
    basename,
    compile_glob,
    has_glob,
    join,
    normalize,
    parent,
    split,
)

# --- normalize ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("//", "/"),
        (".", "/"),
        ("/.", "/"),
        ("/a", "/a"),
        ("a", "/a"),
        ("a/b/", "/a/b"),
        ("/a/b/", "/a/b"),
        ("//a///b//", "/a/b"),
        ("/a/./b/.", "/a/b"),
        ("/a/b/..", "/a"),
        ("/a/b/../..", "/"),
        ("/a/../b/../c", "/c"),
        ("a/b/../../c/", "/c"),
        ("/...", "/..."),
        ("/a..b/.x/..y", "/a..b/.x/..y"),
        ("/ spaced name /tab\there", "/ spaced name /tab\there"),
        ("/héllo/日本", "/héllo/日本"),
        ("/new\nline", "/new\nline"),
        ("/a*/[b]?", "/a*/[b]?"),  # glob chars are ordinary in paths
        ("/back\\slash", "/back\\slash"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", ["..", "/..", "/../x", "/a/../../b", "a/../..", "/./../a"])
def test_normalize_rejects_escape(raw: str) -> None:
    with pytest.raises(InvalidPathError, match="path escapes /"):
        normalize(raw)


@pytest.mark.parametrize("raw", ["\0", "/a\0b", "/a/\0"])
def test_normalize_rejects_nul(raw: str) -> None:
    with pytest.raises(InvalidPathError, match="NUL"):
        normalize(raw)


def test_invalid_path_is_a_pond_error() -> None:
    with pytest.raises(PondError) as info:
        normalize("/..")
    assert info.value.exit_code == 1


# --- split / parent / basename / join -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "parts"),
    [("/", []), ("", []), ("/a", ["a"]), ("/a/b/c", ["a", "b", "c"]), ("a//b/../c/", ["a", "c"])],
)
def test_split(raw: str, parts: list[str]) -> None:
    assert split(raw) == parts


@pytest.mark.parametrize(
    ("raw", "par", "base"),
    [
        ("/", "/", ""),
        ("/a", "/", "a"),
        ("/a/b", "/a", "b"),
        ("/a/b/c/", "/a/b", "c"),
        ("a/b", "/a", "b"),
        ("/a/b/..", "/", "a"),
    ],
)
def test_parent_and_basename(raw: str, par: str, base: str) -> None:
    assert parent(raw) == par
    assert basename(raw) == base


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ((), "/"),
        (("/",), "/"),
        (("a",), "/a"),
        (("/a", "b"), "/a/b"),
        (("/a/", "/b/"), "/a/b"),  # an absolute piece does not restart the path
        (("/a", "b", "..", "c"), "/a/c"),
        (("/", "a", "", "b"), "/a/b"),
    ],
)
def test_join(pieces: tuple[str, ...], expected: str) -> None:
    assert join(*pieces) == expected


def test_join_rejects_escape() -> None:
    with pytest.raises(InvalidPathError):
        join("/a", "..", "..")


def test_helpers_reject_bad_paths() -> None:
    for fn in (split, parent, basename):
        with pytest.raises(InvalidPathError):
            fn("/..")


# --- has_glob -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/", False),
        ("", False),
        ("/a/b", False),
        ("/a.b/c-d", False),
        ("/a*", True),
        ("/a/?", True),
        ("/a/[bc]", True),
        ("/a/[*]", True),  # an escape is still glob syntax
        ("/**", True),
        ("/a/", True),  # trailing slash means contents
        ("/a[b", False),  # unclosed class is literal
        ("/a]b", False),
        ("/a/b/..", False),
    ],
)
def test_has_glob(pattern: str, expected: bool) -> None:
    assert has_glob(pattern) is expected


def test_has_glob_rejects_nul() -> None:
    with pytest.raises(InvalidPathError):
        has_glob("/a\0*")


# --- compile_glob: matching -----------------------------------------------------------------

ALL_PATHS = [
    "/",
    "/a",
    "/b",
    "/x",
    "/a/b",
    "/a/x",
    "/a/b/c",
    "/a/b/x",
    "/a/b/c/x",
    "/a/bc",
    "/a/xx",
    "/b/x",
]


def matches(pattern: str) -> list[str]:
    g = compile_glob(pattern)
    return [p for p in ALL_PATHS if g.match(p)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/", ["/"]),
        ("/a", ["/a"]),
        ("/a/b", ["/a/b"]),
        ("/*", ["/a", "/b", "/x"]),
        ("/a/*", ["/a/b", "/a/x", "/a/bc", "/a/xx"]),
        ("/a/", ["/a/b", "/a/x", "/a/bc", "/a/xx"]),  # trailing slash == /a/*
        ("/a//", ["/a/b", "/a/x", "/a/bc", "/a/xx"]),
        ("/a/?", ["/a/b", "/a/x"]),
        ("/a/b*", ["/a/b", "/a/bc"]),
        ("/a/[bx]", ["/a/b", "/a/x"]),
        ("/a/[!b]", ["/a/x"]),
        ("/a/[^b]", ["/a/x"]),
        ("/a/[a-c]*", ["/a/b", "/a/bc"]),
        ("/*/x", ["/a/x", "/b/x"]),
        ("/**", ALL_PATHS),
        ("/**/*", [p for p in ALL_PATHS if p != "/"]),
        ("/**/", [p for p in ALL_PATHS if p != "/"]),
        ("/a/**", ["/a", "/a/b", "/a/x", "/a/b/c", "/a/b/x", "/a/b/c/x", "/a/bc", "/a/xx"]),
        ("/a/**/x", ["/a/x", "/a/b/x", "/a/b/c/x"]),
        ("/**/x", ["/x", "/a/x", "/a/b/x", "/a/b/c/x", "/b/x"]),
        ("/**/b/**", ["/a/b", "/b", "/a/b/c", "/a/b/x", "/a/b/c/x", "/b/x"]),
        ("/**/**/x", ["/x", "/a/x", "/a/b/x", "/a/b/c/x", "/b/x"]),
        ("/a/**/b/*", ["/a/b/c", "/a/b/x"]),
        ("/a**", ["/a"]),  # `**` inside a part is just `*`s: stays within one part
        ("/*/*/*", ["/a/b/c", "/a/b/x"]),
        ("/a/b/../x", ["/a/x"]),  # patterns are normalized like paths
        ("a/*", ["/a/b", "/a/x", "/a/bc", "/a/xx"]),  # relative to /
        ("/nope/**", []),
    ],
)
def test_glob_matches(pattern: str, expected: list[str]) -> None:
    assert sorted(matches(pattern)) == sorted(expected)


def test_star_does_not_cross_slash() -> None:
    g = compile_glob("/a*c")
    assert g.match("/abc")
    assert not g.match("/a/c")
    assert not g.match("/ab/xc")


def test_negated_class_does_not_match_slash() -> None:
    assert not compile_glob("/a[!x]c").match("/a/c")
    assert not compile_glob("/a?c").match("/a/c")
    # A range spanning `/` in code points still never spans parts.
    assert not compile_glob("/a[+-0]c").match("/a/c")
    assert compile_glob("/a[+-0]c").match("/a.c")


def test_names_with_special_chars() -> None:
    assert compile_glob("/*").match("/new\nline")
    assert compile_glob("/?").match("/\n")
    assert compile_glob("/.*").match("/.hidden")
    assert compile_glob("/*").match("/.hidden")  # no hidden files in a pond
    assert compile_glob("/a.b").match("/a.b")
    assert not compile_glob("/a.b").match("/axb")  # `.` is not a regex wildcard
    assert compile_glob("/(x)+$").match("/(x)+$")
    assert compile_glob("/a\\*").match("/a\\b")  # backslash is an ordinary char, not an escape


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("[*]", "*", True),
        ("[*]", "a", False),
        ("[?]x", "?x", True),
        ("[[]", "[", True),
        ("[]]", "]", True),
        ("[]a]", "a", True),
        ("[!]]", "]", False),
        ("[!]]", "a", True),
        ("a[", "a[", True),  # unclosed class is literal
        ("[!]", "[!]", True),
        ("[z-a]", "m", False),  # reversed range matches nothing
        ("[z-ab]", "b", True),
        ("[a-]", "-", True),
        ("[-a]", "-", True),
        ("[\\]", "\\", True),
        ("[^]", "^", False),  # `[^]` is unclosed: literal "[^]"
        ("[^]", "[^]", True),
    ],
)
def test_char_classes(pattern: str, name: str, expected: bool) -> None:
    assert compile_glob("/" + pattern).match("/" + name) is expected


def test_pattern_errors() -> None:
    with pytest.raises(InvalidPathError, match="path escapes /"):
        compile_glob("/../*")
    with pytest.raises(InvalidPathError, match="path escapes /"):
        compile_glob("/*/../../x")
    with pytest.raises(InvalidPathError, match="NUL"):
        compile_glob("/a/\0*")


def test_pattern_text_is_normalized() -> None:
    assert compile_glob("a//b/").pattern == "/a/b/*"
    assert compile_glob("/").pattern == "/"
    assert compile_glob("").pattern == "/"
    assert compile_glob("/a/../").pattern == "/*"
    assert compile_glob("/a/*/") == compile_glob("/a/*/*")


def test_many_stars_is_fast() -> None:
    # Runs of `*` are collapsed, so this would otherwise backtrack badly.
    g = compile_glob("/" + "*" * 50 + "b")
    assert not g.match("/" + "a" * 5000)
    g = compile_glob("/" + "/".join(["**"] * 30) + "/z")
    assert not g.match("/" + "/".join(["a"] * 200))
    assert g.match("/" + "/".join(["a"] * 200) + "/z")


# --- compile_glob: literal_prefix / is_literal / could_match_below --------------------------


@pytest.mark.parametrize(
    ("pattern", "prefix", "literal"),
    [
        ("/", "/", True),
        ("/a/b", "/a/b", True),
        ("/a/b/*/c", "/a/b", False),
        ("/a/b/c*", "/a/b", False),
        ("/**", "/", False),
        ("/**/x", "/", False),
        ("/a/**", "/a", False),
        ("/a/", "/a", False),
        ("/*", "/", False),
        ("/a/[bc]/d", "/a", False),
        ("/x[*]/y", "/x*/y", True),  # escapes decode: the prefix is a real path
        ("/x[*]/y?", "/x*", False),
        ("/a[b/c", "/a[b/c", True),
    ],
)
def test_literal_prefix(pattern: str, prefix: str, literal: bool) -> None:
    g = compile_glob(pattern)
    assert g.literal_prefix == prefix
    assert g.is_literal is literal
    if literal:
        assert g.match(prefix)


@pytest.mark.parametrize(
    ("pattern", "directory", "expected"),
    [
        ("/a/b/*/c", "/", True),
        ("/a/b/*/c", "/a", True),
        ("/a/b/*/c", "/a/b", True),
        ("/a/b/*/c", "/a/b/q", True),
        ("/a/b/*/c", "/a/b/q/c", False),  # the match itself, nothing below
        ("/a/b/*/c", "/z", False),
        ("/a/b", "/a/b", False),
        ("/a/b", "/a", True),
        ("/a/**", "/a/x/y/z", True),
        ("/a/**", "/b", False),
        ("/**", "/", True),
        ("/**/x", "/any/where", True),
        ("/", "/", False),
    ],
)
def test_could_match_below(pattern: str, directory: str, expected: bool) -> None:
    assert compile_glob(pattern).could_match_below(directory) is expected


# --- property tests -------------------------------------------------------------------------

# Names without glob syntax; weighted towards short, collision-prone alphabets.
literal_names = st.one_of(
    st.sampled_from(["a", "b", "ab", ".x", "...", "a..b", " "]),
    st.text(
        alphabet=st.characters(blacklist_characters="/\0*?[", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=6,
    ),
).filter(lambda s: s not in (".", ".."))

# Raw path pieces including the tricky ones normalization must handle.
raw_pieces = st.one_of(literal_names, st.sampled_from(["", ".", ".."]))
raw_paths = st.builds(
    lambda lead, pieces, trail: lead + "/".join(pieces) + trail,
    st.sampled_from(["", "/", "//"]),
    st.lists(raw_pieces, max_size=8),
    st.sampled_from(["", "/", "//"]),
)
clean_paths = st.lists(literal_names, max_size=5).map(lambda ps: "/" + "/".join(ps))


def normalize_or_none(raw: str) -> str | None:
    try:
        return normalize(raw)
    except InvalidPathError:
        return None


@given(raw_paths)
def test_normalize_idempotent(raw: str) -> None:
    once = normalize_or_none(raw)
    if once is not None:
        assert normalize(once) == once


@given(raw_paths)
def test_normalize_output_is_canonical(raw: str) -> None:
    out = normalize_or_none(raw)
    if out is None:
        return
    assert out.startswith("/")
    assert "//" not in out
    assert out == "/" or not out.endswith("/")
    parts = out.split("/")[1:]
    assert ".." not in parts
    assert "." not in parts
    assert split(out) == ([] if out == "/" else parts)


@given(st.lists(st.one_of(literal_names, st.just("..")), max_size=8))
def test_normalize_escape_iff_depth_negative(pieces: list[str]) -> None:
    depth, escapes = 0, False
    for p in pieces:
        depth += -1 if p == ".." else 1
        escapes = escapes or depth < 0
    raw = "/" + "/".join(pieces)
    if escapes:
        with pytest.raises(InvalidPathError):
            normalize(raw)
    else:
        assert normalize(raw).count("/") == (depth if depth else 1)


@given(clean_paths)
def test_parent_basename_join_roundtrip(path: str) -> None:
    if path != "/":
        assert join(parent(path), basename(path)) == path
    assert split(join(*split(path))) == split(path)


@given(raw_paths, raw_paths)
def test_literal_glob_match_is_equality(pattern: str, path: str) -> None:
    np, nq = normalize_or_none(pattern), normalize_or_none(path)
    if np is None or nq is None:
        return
    g = compile_glob(np)
    assert g.is_literal
    assert g.literal_prefix == np
    assert not has_glob(np)
    assert g.match(nq) == (np == nq)


@given(clean_paths)
def test_literal_glob_matches_itself(path: str) -> None:
    assert compile_glob(path).match(path)


glob_parts = st.text(alphabet="ab*?.", min_size=1, max_size=5).filter(
    lambda s: s not in (".", "..")
)


@given(glob_parts, st.text(alphabet="ab.?*", min_size=1, max_size=6))
def test_single_part_agrees_with_fnmatch(pattern: str, name: str) -> None:
    if name in (".", ".."):
        return
    expected = fnmatch.fnmatchcase(name, pattern)
    assert compile_glob("/" + pattern).match("/" + name) is expected


@given(
    st.lists(st.sampled_from(["a", "b", "*", "?", "**", "[ab]"]), max_size=5),
    st.lists(st.sampled_from(["a", "b", "ab"]), max_size=6),
)
def test_match_implies_ancestors_could_match_below(pattern: list[str], path: list[str]) -> None:
    g = compile_glob("/" + "/".join(pattern))
    p = "/" + "/".join(path)
    if g.match(p):
        for i in range(len(path)):
            assert g.could_match_below("/" + "/".join(path[:i]))
        assert g.match(g.literal_prefix) or not g.is_literal


@given(
    st.lists(st.sampled_from(["a", "b", "*", "**"]), max_size=4),
    st.lists(st.sampled_from(["a", "b"]), max_size=5),
)
def test_globstar_against_reference(pattern: list[str], path: list[str]) -> None:
    # Reference: straightforward recursive matcher over parts.
    def ref(pp: list[str], xs: list[str]) -> bool:
        if not pp:
            return not xs
        head, rest = pp[0], pp[1:]
        if head == "**":
            return any(ref(rest, xs[i:]) for i in range(len(xs) + 1))
        return bool(xs) and fnmatch.fnmatchcase(xs[0], head) and ref(rest, xs[1:])

    g = compile_glob("/" + "/".join(pattern))
    assert g.match("/" + "/".join(path)) is ref(pattern, path)


@given(st.lists(literal_names, min_size=1, max_size=4))
def test_trailing_slash_means_contents(parts: list[str]) -> None:
    base = "/" + "/".join(parts)
    with_slash = compile_glob(base + "/")
    star = compile_glob(base + "/*")
    for candidate in (base, base + "/x", base + "/x/y", "/"):
        assert with_slash.match(candidate) == star.match(candidate)
    assert with_slash.match(base + "/child")
    assert not with_slash.match(base)
