"""The template sandbox: Jinja2 that reads only the project's templates and stops fast.

Why so strict: storyboards and their ``templates/`` travel between people (an archive keeps
symlinks), and whatever a template prints goes into the plan and is sent to Kling. So a template

* may read only regular files inside the project's ``templates/`` folder or the built-in ones,
  after every symlink is resolved (no ``{% include %}`` of ``/etc/passwd`` through a link, never
  the project's ``.env`` with the Kling secret, no FIFO or device that would hang the read);
* may not reach Python internals (``SandboxedEnvironment``);
* is bounded: at most ``OUTPUT_LIMIT`` characters of output, ``STEP_LIMIT`` loop iterations and
  calls, ``TIME_LIMIT`` seconds, and no value bigger than ``VALUE_LIMIT`` characters and items
  (an alias bomb in ``vars``, ``'x' * 300000000``, a nested ``range(100000)``) — each stops in
  milliseconds with ``TemplateLimitExceeded``, which the planner reports at the template's line.

The bounds are checked in the sandbox's hooks: every call, intercepted operator, printed value
and loop iteration (each ``{% for %}`` iterable is wrapped at compile time) takes a step from a
per-render budget held in a context variable, so one cached environment serves every render.
"""

from __future__ import annotations

import math
import os
import re
import stat
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

OUTPUT_LIMIT = 65_536
"""Characters one template render may produce: 26 times Kling's 2,500-character prompt limit."""
VALUE_LIMIT = 4 * OUTPUT_LIMIT
"""Characters and items of any one value a template sees or makes (a var, a string, a list)."""
STEP_LIMIT = 10_000
"""Loop iterations and calls in one render: a prompt template needs a few dozen."""
TIME_LIMIT = 1.0
"""CPU seconds of the rendering thread one render may take; a prompt template takes well under a
millisecond. CPU time, not wall time: on a loaded machine a render that is merely preempted must not
fail (the step and size bounds stop the known bombs long before this backstop)."""
TEMPLATE_FILE_LIMIT = 1_048_576
"""Bytes of one template file."""

_BOUNDED_ITERATION = "storyboard_bounded_iteration"
"""The filter every ``{% for %}`` iterable is wrapped in (counts one step per item)."""


class TemplateLimitExceeded(jinja2.TemplateRuntimeError):
    """A template went over one of the sandbox's bounds (output, value size, steps, time)."""


class TemplateRefused(jinja2.TemplateError):
    """A template name that leads outside the allowed folders, or to something not a regular file."""


# --- the per-render budget ---------------------------------------------------------------------------


@dataclass
class _Budget:
    deadline: float
    steps: int = 0

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > STEP_LIMIT:
            raise TemplateLimitExceeded(
                f"the template ran more than {STEP_LIMIT:,} loop iterations and calls (the template step limit): "
                "loop over fewer items"
            )
        if time.thread_time() > self.deadline:
            raise TemplateLimitExceeded(f"the template ran longer than {TIME_LIMIT:g} s of CPU (the template time limit)")


_BUDGET: ContextVar[_Budget | None] = ContextVar("storyboard_template_budget", default=None)


def _step(count: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step(count)


def render_bounded(template: jinja2.Template, context: dict[str, Any]) -> str:
    """Render within the sandbox's bounds; raises ``TemplateLimitExceeded`` as soon as one is passed."""
    budget = _Budget(deadline=time.thread_time() + TIME_LIMIT)
    token = _BUDGET.set(budget)
    try:
        parts: list[str] = []
        size = 0
        for piece in template.generate(context):
            size += len(piece)
            if size > OUTPUT_LIMIT:
                raise TemplateLimitExceeded(
                    f"the template's output passed {OUTPUT_LIMIT:,} characters (the template output limit; "
                    "Kling takes at most 2,500 per prompt): print less"
                )
            parts.append(piece)
        budget.step(0)
        return "".join(parts)
    finally:
        _BUDGET.reset(token)


# --- value sizes ----------------------------------------------------------------------------------------


def expanded_size(value: Any, memo: dict[int, int] | None = None) -> int:
    """Characters and items of a value as printing it would expand it (shared parts counted each time).

    Linear in the number of distinct objects, so a YAML alias bomb (nine lists of nine lists ...)
    is measured in microseconds although it expands to billions of items.
    """
    memo = {} if memo is None else memo
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        memo[key] = 0  # a cycle counts once
        size = 1 + sum(expanded_size(k, memo) + expanded_size(v, memo) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        memo[key] = 0
        size = 1 + sum(expanded_size(v, memo) for v in value)
    else:
        size = 1
    memo[key] = size
    return size


def _size_over(value: Any, limit: int) -> bool:
    """Whether a value expands past ``limit`` (stops counting as soon as it does)."""
    try:
        return expanded_size(value) > limit
    except RecursionError:
        return True


class TooLarge:
    """Stands in for a value too large for a template: harmless until the template touches it."""

    def __init__(self, name: str, size: int) -> None:
        object.__setattr__(self, "_message", f"{name} expands to {size:,} characters and items, more than the "
                           f"template value limit of {VALUE_LIMIT:,} (a YAML alias bomb?): make it smaller")

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TemplateLimitExceeded(object.__getattribute__(self, "_message"))

    __str__ = __repr__ = __iter__ = __len__ = __getitem__ = __contains__ = _refuse

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)  # Python's own probes (``__html__``, ``__iter__``...) stay probes
        self._refuse()

    def __bool__(self) -> bool:
        return True


def bounded_values(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``values`` with every entry too large for a template replaced by a ``TooLarge`` marker."""
    memo: dict[int, int] = {}
    result: dict[str, Any] = {}
    for name, value in values.items():
        try:
            size = expanded_size(value, memo)
        except RecursionError:
            size = VALUE_LIMIT + 1
        result[name] = TooLarge(f"{prefix}.{name}", size) if size > VALUE_LIMIT else value
    return result


def _check_result(value: Any) -> Any:
    """A value a template made: refused when it grew past the value limit."""
    if isinstance(value, (str, list, tuple, dict, set)) and len(value) > VALUE_LIMIT:
        raise TemplateLimitExceeded(
            f"the template made a value of {len(value):,} characters or items, more than the template value "
            f"limit of {VALUE_LIMIT:,}"
        )
    return value


def _refuse_amount(what: str, amount: float) -> None:
    if amount > VALUE_LIMIT:
        raise TemplateLimitExceeded(
            f"{what} would make {amount:,.0f} characters or items, more than the template value limit of {VALUE_LIMIT:,}"
        )


# --- guards on the few operations that multiply sizes ---------------------------------------------------

_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")


def _check_printf(fmt: str, args: Any) -> None:
    """Widths and precisions in a %-format, and any ``*`` widths taken from the arguments."""
    for match in _PRINTF_SPEC.finditer(fmt):
        for part in match.groups():
            if part == "*":
                values = args if isinstance(args, tuple) else (args,)
                for value in values:
                    if isinstance(value, int) and not isinstance(value, bool):
                        _refuse_amount("a %-format width", abs(value))
            elif part:
                _refuse_amount("a %-format width", int(part))


def _check_format_spec(fmt: str, args: tuple, kwargs: dict) -> None:
    """Widths in a ``str.format`` string, and nested ``{:{width}}`` widths from its arguments."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format will raise the same error itself
    for _literal, _name, spec, _conversion in fields:
        if not spec:
            continue
        for digits in re.findall(r"\d+", spec):
            _refuse_amount("a format width", int(digits))
        if "{" in spec:
            for value in (*args, *kwargs.values()):
                if isinstance(value, int) and not isinstance(value, bool):
                    _refuse_amount("a format width", abs(value))


def _check_method_call(obj: Any, args: tuple, kwargs: dict) -> None:
    """Refuse a str/list method call whose result would pass the value limit, before it is made."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, str):
        if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
            _refuse_amount(f"str.{name}", args[0])
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                _refuse_amount("str.expandtabs", len(owner) + owner.count("\t") * size)
        elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
            _refuse_amount("str.replace", len(owner) + (owner.count(args[0]) or 0) * len(args[1]))
        elif name == "join" and args and hasattr(args[0], "__len__"):
            _refuse_amount("str.join", len(owner) * max(len(args[0]) - 1, 0))
        elif name in ("format", "format_map"):
            _check_format_spec(owner, args, kwargs)


def _with_check(original: Callable[..., Any], check: Callable[[tuple, dict], None]) -> Callable[..., Any]:
    """A filter that runs ``check`` on its arguments first (keeping Jinja's pass-context marker)."""

    @wraps(original)
    def guarded_filter(*args: Any, **kwargs: Any) -> Any:
        check(args, kwargs)
        return _check_result(original(*args, **kwargs))

    return guarded_filter


def _int_arguments(label: str) -> Callable[[tuple, dict], None]:
    """Widths and counts after the filtered value (``center(80)``, ``batch(3)``) within the value limit."""

    def check(args: tuple, kwargs: dict) -> None:
        for value in (*args[1:], *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool):
                _refuse_amount(label, abs(value))

    return check


def _replace_check(args: tuple, kwargs: dict) -> None:
    text, old, new = (list(args[1:4]) + [None, None, None])[:3]  # args[0] is the eval context
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        _refuse_amount("the replace filter", len(text) + text.count(old) * len(new))


def _join_check(args: tuple, kwargs: dict) -> None:
    value = args[1] if len(args) > 1 else None  # args[0] is the eval context
    separator = args[2] if len(args) > 2 else kwargs.get("d", "")
    if isinstance(value, (list, tuple, str, dict)) and isinstance(separator, str):
        _refuse_amount("the join filter", len(separator) * max(len(value) - 1, 0))


def _format_check(args: tuple, kwargs: dict) -> None:
    if args and isinstance(args[0], str):
        _check_printf(args[0], tuple(args[1:]) or tuple(kwargs.values()))


def _guarded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters, with those whose output size is set by an argument checked first."""
    checks: dict[str, Callable[[tuple, dict], None]] = {
        name: _int_arguments(f"the {name} filter") for name in ("center", "indent", "batch", "slice")
    }
    checks.update(replace=_replace_check, join=_join_check, format=_format_check)
    return {name: _with_check(f, checks[name]) if name in checks else f for name, f in filters.items()}


def _bounded_range(*args: int) -> range:
    steps = range(*args)
    if len(steps) > STEP_LIMIT:
        raise TemplateLimitExceeded(
            f"range({', '.join(map(str, args))}) has {len(steps):,} steps; a template runs at most "
            f"{STEP_LIMIT:,} loop iterations and calls (the template step limit)"
        )
    return steps


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    _refuse_amount("lipsum", n * max)
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


class _BoundedNamespace(Namespace):
    """``namespace()`` whose attributes cannot grow past the value limit (``{% set ns.s = ns.s ~ ns.s %}``)."""

    def __setitem__(self, name: str, value: Any) -> None:
        _step()
        Namespace.__setitem__(self, name, _check_result(value))


def _bounded_iteration(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _step()
        yield item


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}`` before it is turned into text: nothing that would print past the output limit."""
    if isinstance(value, TooLarge):
        value._refuse()
    if isinstance(value, str):
        if len(value) > OUTPUT_LIMIT:
            raise TemplateLimitExceeded(
                f"the template prints a text of {len(value):,} characters, more than the template output limit "
                f"of {OUTPUT_LIMIT:,}"
            )
    elif isinstance(value, (list, tuple, dict, set)) and _size_over(value, OUTPUT_LIMIT):
        raise TemplateLimitExceeded(
            f"the template prints a value of more than {OUTPUT_LIMIT:,} characters and items (the template "
            "output limit)"
        )
    return value


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox with bounds on output, value sizes, steps and time (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.globals["range"] = _bounded_range
        self.globals["lipsum"] = _bounded_lipsum
        self.globals["namespace"] = _BoundedNamespace
        self.filters = _guarded_filters(self.filters)
        self.filters[_BOUNDED_ITERATION] = _bounded_iteration

    def compile(
        self,
        source: str | nodes.Template,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        """Compile with every ``{% for %}`` iterable wrapped in the step-counting filter."""
        tree = self.parse(source, name, filename) if isinstance(source, str) else source
        for loop in tree.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == _BOUNDED_ITERATION):
                loop.iter = nodes.Filter(loop.iter, _BOUNDED_ITERATION, [], [], None, None, lineno=loop.iter.lineno)
        return super().compile(tree, name, filename, raw, defer_init)  # type: ignore[call-overload]

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _step()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                    _refuse_amount("a repetition", len(seq) * times)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
            if right * math.log2(abs(left)) > 4096:
                raise TemplateLimitExceeded(f"{left} ** {right} is too large a number for a template")
        elif operator == "%" and isinstance(left, str):
            _check_printf(left, right)
        return _check_result(super().call_binop(context, operator, left, right))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        _check_method_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (list, dict, set)):
            _check_result(owner)  # list.extend / dict.update grew it in place
        return _check_result(result)


# --- the loader -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Root:
    folder: str
    """The folder as named (messages and file names use it)."""
    real: str | None
    """Its real path, or None when the folder itself leads outside where it may be."""
    refusal: str = ""


@dataclass(eq=False)  # Jinja keys its template cache by a weak reference to the loader
class ConfinedLoader(jinja2.BaseLoader):
    """Loads template names from the project's ``templates/`` folder, then the built-ins; nothing else.

    Every name is resolved to a real path (symlinks followed) that must stay inside the folder it
    was found in, must not be hidden (``.env``), and must be a regular file (no FIFO or device).
    """

    project_dir: Path
    builtin_dir: Path
    roots: list[_Root] = field(init=False)

    def __post_init__(self) -> None:
        project_real = os.path.realpath(self.project_dir)
        templates = os.path.join(os.fspath(self.project_dir), "templates")
        templates_real = os.path.realpath(templates)
        if _inside(templates_real, project_real) and templates_real != project_real:
            project_root = _Root(templates, templates_real)
        else:
            project_root = _Root(templates, None, f"the project's templates/ folder leads to {templates_real}, "
                                 "outside the project")
        self.roots = [project_root, _Root(os.fspath(self.builtin_dir), os.path.realpath(self.builtin_dir))]

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = _name_pieces(template)
        for root in self.roots:
            candidate = os.path.normpath(os.path.join(root.folder, *pieces))
            if not os.path.lexists(candidate):
                continue
            if root.real is None:
                raise TemplateRefused(f"template {template!r} refused: {root.refusal}")
            real = os.path.realpath(candidate)
            if not _inside(real, root.real):
                raise TemplateRefused(
                    f"template {template!r} refused: it is a link to {real}, outside {root.folder}; templates may "
                    "only read files inside the project's templates/ folder (copy the file in instead of linking it)"
                )
            return _read_template(template, candidate, real)
        raise jinja2.TemplateNotFound(template)


def _name_pieces(template: str) -> list[str]:
    """A template name's path parts; names that try to leave the folder are refused outright."""
    if template.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", template):
        raise TemplateRefused(f"template {template!r} refused: template names are paths inside templates/, not absolute paths")
    pieces = [piece for piece in re.split(r"[/\\]", template) if piece and piece != "."]
    if ".." in pieces:
        raise TemplateRefused(f"template {template!r} refused: '..' would leave the templates/ folder")
    if any(piece.startswith(".") for piece in pieces):
        raise TemplateRefused(f"template {template!r} refused: hidden files (such as .env) are never read by templates")
    return pieces


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _read_template(name: str, shown: str, real: str) -> tuple[str, str, Callable[[], bool]]:
    """The text of a regular template file, opened so a FIFO cannot block and a device is refused."""
    if any(part.startswith(".") for part in Path(real).parts[-1:]):
        raise TemplateRefused(f"template {name!r} refused: it leads to a hidden file ({real}), which templates never read")
    try:
        descriptor = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise TemplateRefused(f"template {name!r} cannot be read: {error.strerror or error}") from None
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise TemplateRefused(f"template {name!r} refused: {shown} is not a regular file (a FIFO, device or folder)")
        if status.st_size > TEMPLATE_FILE_LIMIT:
            raise TemplateRefused(
                f"template {name!r} is {status.st_size:,} bytes; a template file may have at most "
                f"{TEMPLATE_FILE_LIMIT:,}"
            )
        data = handle.read(TEMPLATE_FILE_LIMIT + 1)
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TemplateRefused(f"template {name!r} is not UTF-8 text (byte {error.start}): save it as UTF-8") from None
    mtime = status.st_mtime_ns

    def uptodate() -> bool:
        try:
            return os.stat(real).st_mtime_ns == mtime and os.path.realpath(shown) == real
        except OSError:
            return False

    return source, shown, uptodate
