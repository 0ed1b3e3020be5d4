"""Prompts: every shot's text fields and its prompt template, rendered in the sandbox.

Why every text field is a template: users write ``subject: "{{ references.cup.description }}"``
or ``caption: "{{ vars.brand }}"`` as naturally as a templated prompt, and campaigns swap those
values per variant. Why sandboxed and bounded: see ``plan.sandbox``. Why located errors: a typo
in a variable name must point at the template line (``StrictUndefined``), not leave a silently
empty prompt that Kling would bill.
"""

from __future__ import annotations

import functools
import re
import traceback
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import StrictUndefined

import storyboard
from storyboard.errors import Location
from storyboard.plan.rules import Findings, check_text
from storyboard.plan.sandbox import (
    OUTPUT_LIMIT,
    BoundedSandbox,
    ConfinedLoader,
    TemplateRefused,
    bounded_values,
    render_bounded,
)
from storyboard.plan.shots import SETTINGS, RequestInputs, ResolvedShot

TEMPLATE_SUFFIX = ".j2"
SINGLE_SHOT_TEMPLATE = "motion"
MULTI_SHOT_TEMPLATE = "multishot"
INLINE_TEMPLATE_FIELDS = ("prompt", "subject", "action", "camera", "mood", "caption")
"""Shot text fields rendered as inline Jinja2 templates before the prompt template sees them."""


def builtin_templates_dir() -> Path:
    """Where the built-in prompt templates live.

    A wheel ships them inside the package as ``builtin_templates`` (pyproject force-include); an
    editable install reads the repository's top-level ``templates/`` directly.
    """
    packaged = Path(storyboard.__file__).parent / "builtin_templates"
    if packaged.is_dir():
        return packaged
    return Path(storyboard.__file__).resolve().parent.parent / "templates"


def builtin_template_names() -> list[str]:
    return sorted(p.name[: -len(TEMPLATE_SUFFIX)] for p in builtin_templates_dir().glob(f"*{TEMPLATE_SUFFIX}"))


def template_environment(project_dir: Path) -> BoundedSandbox:
    """The bounded sandbox reading the project's ``templates/`` first, then the built-ins.

    ``StrictUndefined`` turns a typo in a variable name into a located error. Cached per project
    folder: a campaign plans hundreds of variants of one project, and compiling the same templates
    for each dominated its planning time; the loader still checks each file's real path and
    modification time, so an edited (or newly linked) template is seen.
    """
    return _environment(str(Path(project_dir).resolve()))


@functools.lru_cache(maxsize=16)
def _environment(project_dir: str) -> BoundedSandbox:
    return BoundedSandbox(
        loader=ConfinedLoader(Path(project_dir), builtin_templates_dir()),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


@functools.lru_cache(maxsize=4096)
def _inline_template(env: BoundedSandbox, source: str) -> jinja2.Template:
    """An inline template (a shot's prompt, caption...) compiled once per environment and text."""
    return env.from_string(source)


class ProjectName(str):
    """The project's name; ``{{ project }}`` and ``{{ project.name }}`` both print it."""

    @property
    def name(self) -> str:
        return str(self)


class ReferenceNotUsable(jinja2.TemplateRuntimeError):
    """``ref()`` was asked for a reference the target request cannot show the model."""


def _render_inline_text(env: BoundedSandbox, source: str, context: dict[str, Any]) -> str | None:
    """An inline text rendered; plain text is its own output, and a text whose only tags are
    ``{{ vars.brand }}``-style lookups of plain values is filled in without compiling it.

    Why the shortcuts: most prompts are prose with a few variables, each one different, and
    compiling each through Jinja was most of the time of planning a long storyboard (1,000 shots:
    about 2 ms a prompt). Anything else (filters, statements, a missing or odd value, a name that is
    also a dict method) goes through the sandbox as before, so the output never differs.
    """
    if "{" not in source:
        return source.strip() or None
    filled = _filled_in(source, context)
    if filled is None:
        filled = render_bounded(_inline_template(env, source), context)
    return filled.strip() or None


_LOOKUP_TAG = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")
_PLAIN_VALUE_TYPES = (str, int, float)


def _filled_in(source: str, context: dict[str, Any]) -> str | None:
    """``source`` with each ``{{ a.b }}`` replaced by its value, or None when Jinja is needed."""
    pieces: list[str] = []
    position = 0
    for match in _LOOKUP_TAG.finditer(source):
        value: Any = context
        for name in match.group(1).split("."):
            if type(value) is not dict or name not in value or hasattr(value, name):
                return None
            value = value[name]
        if type(value) not in _PLAIN_VALUE_TYPES:
            return None
        pieces += [source[position:match.start()], str(value)]
        position = match.end()
    pieces.append(source[position:])
    text = "".join(pieces)
    literal = _LOOKUP_TAG.sub("", source)
    if any(tag in literal for tag in ("{{", "{%", "{#")) or len(text) > OUTPUT_LIMIT:
        return None
    return text


def collapse(text: str) -> str:
    return " ".join(text.split())


class PromptRenderer:
    """Renders the shots of one planning pass; keeps each shot's rendered inline fields."""

    def __init__(self, findings: Findings, env: BoundedSandbox) -> None:
        self.findings = findings
        self.board = findings.board
        self.env = env
        self.inline_texts: dict[int, dict[str, str | None]] = {}
        self._board_vars = bounded_values(self.board.vars, "vars")

    def render(self, shot: ResolvedShot, inputs: RequestInputs, multi: bool) -> str:
        """The shot's final prompt: its text fields rendered inline, then through its template."""
        context = self._context(shot, inputs, multi)
        texts = self._render_inline(shot, context)
        if texts is None:
            return ""
        self.inline_texts[shot.index] = texts
        for field_name, text in texts.items():
            context["shot"][field_name] = text
        return self._render_template(shot, context, texts["prompt"] or "")

    def _render_inline(self, shot: ResolvedShot, context: dict[str, Any]) -> dict[str, str | None] | None:
        texts: dict[str, str | None] = {}
        for field_name in INLINE_TEMPLATE_FIELDS:
            source = getattr(shot.spec, field_name)
            if not source:
                texts[field_name] = None
                continue
            at = self.findings.at("shots", shot.index, field_name)
            try:
                texts[field_name] = _render_inline_text(self.env, source, context)
            except jinja2.TemplateSyntaxError as exc:
                self.findings.template_error(
                    at, f"template syntax error in the {field_name} (line {exc.lineno} of it): {exc.message}"
                )
                return None
            except Exception as exc:  # noqa: BLE001 - any template failure is the user's to fix
                self.findings.template_error(at, f"the {field_name} cannot be rendered: {explain(exc)}")
                return None
            check_text(self.findings, at, f"the {field_name}", texts[field_name])
        return texts

    def _render_template(self, shot: ResolvedShot, context: dict[str, Any], fallback: str) -> str:
        name = shot.template or (MULTI_SHOT_TEMPLATE if context["target"]["multi_shot"] else SINGLE_SHOT_TEMPLATE)
        file_name = name if name.endswith(TEMPLATE_SUFFIX) else name + TEMPLATE_SUFFIX
        try:
            template = self.env.get_template(file_name)
        except jinja2.TemplateNotFound:
            self.findings.template_error(
                self.findings.where(shot, "template"),
                f"template {name!r} not found: create templates/{file_name} in the project, or use a built-in "
                f"({', '.join(builtin_template_names())})",
            )
            return fallback
        except TemplateRefused as exc:
            self.findings.template_error(self.findings.where(shot, "template"), str(exc.message))
            return fallback
        except jinja2.TemplateSyntaxError as exc:
            self.findings.template_error(
                file_location(exc.filename or file_name, exc.lineno), f"template syntax error: {exc.message}"
            )
            return fallback
        try:
            text = render_bounded(template, context)
        except Exception as exc:  # noqa: BLE001
            location = template_location(exc, file_location(template.filename or file_name, 0))
            self.findings.template_error(location, f"template {name!r} failed for shot {shot.id}: {explain(exc)}")
            return fallback
        return collapse(text)

    def _context(self, shot: ResolvedShot, inputs: RequestInputs, multi: bool) -> dict[str, Any]:
        board = self.board
        shot_vars = bounded_values(shot.spec.vars, f"shots[{shot.index}].vars")
        shot_fields = shot.spec.model_dump(mode="json", exclude={"vars"})
        shot_fields["vars"] = shot_vars
        for name in SETTINGS:
            shot_fields[name] = getattr(shot, name)
        return {
            "shot": shot_fields,
            "defaults": board.defaults.model_dump(mode="json"),
            "references": {
                rid: {"image": r.image, "role": r.role, "description": r.description}
                for rid, r in board.references.items()
            },
            "vars": {**self._board_vars, **shot_vars},
            "project": ProjectName(board.name),
            "ref": self._ref_function(shot, inputs),
            "voice": _voice_function(shot),
            "target": {"model": shot.model, "family": inputs.family, "multi_shot": multi, "omni": shot.info.omni},
            "inputs": [r for r in shot.spec.references if r in inputs.tokens()],
        }

    def _ref_function(self, shot: ResolvedShot, inputs: RequestInputs) -> Any:
        tokens = inputs.tokens()
        board = self.board
        omni = shot.info.omni

        def ref(ref_id: str) -> str:
            if ref_id not in board.references:
                known = ", ".join(board.references) or "none"
                raise ReferenceNotUsable(f"ref({ref_id!r}): no reference named {ref_id!r} (references: {known})")
            if ref_id in tokens:
                return tokens[ref_id]
            if omni:
                raise ReferenceNotUsable(
                    f"ref({ref_id!r}): {ref_id} is not sent with this request: add it to shots[{shot.index}].references"
                )
            reference = board.references[ref_id]
            return reference.description or ref_id.replace("_", " ").replace("-", " ")

        return ref


def _voice_function(shot: ResolvedShot) -> Any:
    """``voice(1)``: the token of the shot's first ``voices`` entry (kling-v2-6): ``<<<voice_1>>>`` on
    the legacy API (``voice_list``), ``@voice_1`` on the new one (the ``voice`` part labelled
    ``voice_1``, kling-api-2.md §7.3).

    Why a function and not the literal: it refuses, at the template's line, a number the shot's
    ``voices`` do not have, which Kling would otherwise refuse after the plan was priced. On 3.0 a
    voice speaks through its element: name the element with ``ref()`` instead.
    """
    new_api = shot.api == "new"

    def voice(number: int) -> str:
        count = len(shot.spec.voices)
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= count:
            raise ReferenceNotUsable(
                f"voice({number!r}): shot {shot.id} lists {count} voice(s) in voices"
                + (f": use 1 to {count}" if count else "; on kling-v3 a voice speaks through its element: use ref()")
            )
        return f"@voice_{number}" if new_api else f"<<<voice_{number}>>>"

    return voice


def template_location(exc: BaseException, fallback: Location) -> Location:
    """The template file and line an exception came from (Jinja rewrites tracebacks to them)."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename == "<template>" or f.filename.endswith(TEMPLATE_SUFFIX)
    ]
    if not frames:
        return fallback
    frame = frames[-1]
    if frame.filename == "<template>":
        return fallback
    return file_location(frame.filename, frame.lineno or 0)


def file_location(filename: str, line: int) -> Location:
    """A template file as messages show it: relative to the working folder when inside it."""
    path = Path(filename)
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(path)
    return Location(file=shown, line=line, col=1 if line else 0)


def explain(exc: BaseException) -> str:
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"refused by the sandbox ({exc}); templates may only use values, not Python internals"
    if isinstance(exc, jinja2.UndefinedError):
        return f"{exc} (check the spelling; values come from shot, defaults, references, vars, project)"
    if isinstance(exc, jinja2.TemplateError):
        return str(exc.message or exc)
    if isinstance(exc, RecursionError):
        return "the template recursed too deeply (a macro or loop that calls itself without end?)"
    return f"{type(exc).__name__}: {exc}"
