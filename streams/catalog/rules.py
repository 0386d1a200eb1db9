"""Per-request rules: the ``category`` and ``exclude`` values a caller sends, checked.

The same rule holds on every path: REST (``?category=news&category=sport&exclude=p1``),
``streamrec batch-score --category news --exclude p1`` and, on the stream, the page
view's ``context`` under :data:`CONTEXT_CATEGORY` and :data:`CONTEXT_EXCLUDE`, whose
values list several entries separated by ``|`` (a context value is one string).

A value is refused (:class:`~streams.errors.BadRule`: a 400 over REST, a dead letter on
the stream, ``error:`` and exit 2 in batch-score) when it is empty, longer than
:data:`MAX_VALUE_CHARS`, or when a request names more than :data:`MAX_CATEGORIES`
categories or :data:`MAX_EXCLUDE` pages: a rule that cannot be meant is said, not guessed.
A category no page has is not an error (the catalog may not have it *yet*); it matches
nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from online_model.catalog import Rules
from streams.errors import BadRule

#: Keys of a PageView's ``context`` that carry the rules of the answer to that view.
CONTEXT_CATEGORY = "streamrec.category"
CONTEXT_EXCLUDE = "streamrec.exclude"
#: Separator of several values in one context value.
CONTEXT_SEPARATOR = "|"
MAX_CATEGORIES = 50
MAX_EXCLUDE = 1_000
MAX_VALUE_CHARS = 512
#: What is trimmed from each value: ASCII blanks only. ``str.strip()`` would also trim
#: control characters such as U+001E, which a page id may hold and which no schema regex
#: calls blank; the OpenAPI pattern of a value (:data:`VALUE_PATTERN`) says the same thing.
BLANKS = " \t\r\n\f\v"
#: A value has at least one character that is not a blank.
VALUE_PATTERN = "[^ \\t\\r\\n\\f\\v]"

NO_RULES = Rules()


def _values(name: str, values: Iterable[str], most: int) -> frozenset[str]:
    out: list[str] = []
    for value in values:
        text = value.strip(BLANKS)
        if not text:
            raise BadRule(f"{name} must not be empty")
        if len(text) > MAX_VALUE_CHARS:
            raise BadRule(f"{name} must be at most {MAX_VALUE_CHARS} characters, got {len(text)}")
        out.append(text)
    if len(out) > most:
        raise BadRule(f"at most {most} {name} values per request, got {len(out)}")
    return frozenset(out)


def parse_rules(categories: Iterable[str] = (), exclude: Iterable[str] = ()) -> Rules:
    """Rules from the given values (each one category or one page id).

    >>> sorted(parse_rules(["news", " sport "], ["p1"]).categories)
    ['news', 'sport']
    >>> sorted(parse_rules(exclude=["\\x1e"]).exclude)  # a control character is not blank
    ['\\x1e']
    >>> parse_rules(["  "])
    Traceback (most recent call last):
    ...
    streams.errors.BadRule: category must not be empty
    """
    return Rules(
        _values("category", categories, MAX_CATEGORIES),
        _values("exclude", exclude, MAX_EXCLUDE),
    )


def rules_from_context(context: Mapping[str, str] | None) -> Rules:
    """The rules a page view carries in its ``context`` (none when the keys are absent).

    >>> rules = rules_from_context({"streamrec.category": "news|sport", "app": "x"})
    >>> sorted(rules.categories), sorted(rules.exclude)
    (['news', 'sport'], [])
    >>> rules_from_context({"streamrec.exclude": "p1||p2"})
    Traceback (most recent call last):
    ...
    streams.errors.BadRule: context streamrec.exclude: exclude must not be empty
    """
    if not context or (CONTEXT_CATEGORY not in context and CONTEXT_EXCLUDE not in context):
        return NO_RULES
    return Rules(
        _context_values(context, CONTEXT_CATEGORY, "category", MAX_CATEGORIES),
        _context_values(context, CONTEXT_EXCLUDE, "exclude", MAX_EXCLUDE),
    )


def _context_values(context: Mapping[str, str], key: str, name: str, most: int) -> frozenset[str]:
    value = context.get(key)
    if value is None:
        return frozenset()
    try:
        return _values(name, value.split(CONTEXT_SEPARATOR), most)
    except BadRule as exc:
        raise BadRule(f"context {key}: {exc}") from None
