"""Which shots share a request, and how many seconds Kling renders for each.

Why this is where money is decided: one multi-shot request of four 3 s shots is billed 12 s,
four single requests of kling-v3 are billed at least 4 x 3 s too, but on older models each
would be rounded up to 5 s. The grouping packs consecutive compatible shots (``strategy: auto``)
or honours the user's ``groups``; the durations say what Kling renders and bills, and a note
explains every second that differs from what the cut keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from storyboard.load.spec import PREVIOUS_FRAME, Storyboard
from storyboard.plan import capabilities as caps
from storyboard.plan.capabilities import OMNI
from storyboard.plan.extra import extra_of
from storyboard.plan.kinds import KIND_FIELDS
from storyboard.plan.rules import Findings, check_explicit_group, input_limit_problem, seconds_text
from storyboard.plan.shots import RequestInputs, ResolvedShot


@dataclass
class Group:
    """The shots of one request, in order; ``multi`` when it is one multi-shot request."""

    shots: list[ResolvedShot]
    multi: bool
    notes: list[str] = field(default_factory=list)
    explicit: int | None = None
    """Index in ``storyboard.groups`` when the user grouped these shots by hand."""
    reason: str | None = None
    """Why auto packing started a new request at this group's first shot (for its notes)."""
    intelligence: bool = False
    """Multi-shot ``shot_type: intelligence``: one prompt, Kling chooses the shots and their boundaries."""


@dataclass
class Grouping:
    """Packs shots into requests; ``unpackable`` holds shots whose prompts proved too long for multi-shot."""

    findings: Findings
    unpackable: set[int] = field(default_factory=set)

    def groups(self, shots: list[ResolvedShot]) -> list[Group]:
        """The requests' shot groups in storyboard order (explicit groups first, then auto packing)."""
        explicit = self._explicit_groups(shots)
        strategy = self.findings.board.defaults.strategy
        if strategy == "multi_shot":
            for model in dict.fromkeys(s.model for s in shots if not s.info.multi_shot):
                self.findings.error(
                    self.findings.at("defaults", "strategy"),
                    f"strategy multi_shot needs a model with multi-shot ({', '.join(caps.MULTI_SHOT_MODELS)}), "
                    f"but shots use {model}: set strategy auto or per_shot, or change the model",
                )
        groups: list[Group] = []
        reasons: dict[int, str] = {}
        i = 0
        while i < len(shots):
            if i in explicit:
                group = explicit[i]
            elif strategy == "per_shot" or not self._packable(shots[i]):
                group = Group([shots[i]], multi=False)
            else:
                group = self._pack(shots, i, explicit, reasons)
            group.reason = reasons.get(group.shots[0].index)
            groups.append(group)
            i += len(group.shots)
        return groups

    def _pack(self, shots: list[ResolvedShot], i: int, explicit: dict[int, Group], reasons: dict[int, str]) -> Group:
        """The longest run of shots from ``i`` that can share one multi-shot request."""
        group = Group([shots[i]], multi=False)
        j = i + 1
        while j < len(shots) and j not in explicit:
            reason = self._join_refusal(group.shots, shots[j])
            if reason:
                if shots[j].info.multi_shot:
                    reasons[shots[j].index] = reason
                break
            group.shots.append(shots[j])
            j += 1
        group.multi = len(group.shots) > 1
        return group

    def _packable(self, shot: ResolvedShot) -> bool:
        spec = shot.spec
        return (
            shot.info.multi_shot
            and shot.index not in self.unpackable
            and not spec.camera_control
            and not spec.motion_brush
            and not spec.voices
            and not any(getattr(spec, kind) is not None for kind in KIND_FIELDS)
        )

    def _join_refusal(self, group: list[ResolvedShot], shot: ResolvedShot) -> str | None:
        """Why ``shot`` cannot join the multi-shot request being packed (None: it can)."""
        first, last = group[0], group[-1]
        if not self._packable(shot):
            if shot.index in self.unpackable:
                return f"shot {shot.id}'s prompt is over {caps.MULTI_SHOT_PROMPT_MAX} characters, too long for a multi-shot request"
            return f"shot {shot.id} cannot be part of a multi-shot request"
        frames = _frame_refusal(first, last, shot)
        if frames:
            return frames
        differing = first.differing_settings(shot)
        if differing:
            return f"shot {shot.id} differs from shot {first.id} in {', '.join(differing)}"
        if self._extra(shot) != self._extra(first):
            return f"shot {shot.id} differs from shot {first.id} in extra (a request sends one body)"
        if len(group) >= caps.MULTI_SHOT_MAX_SHOTS:
            return f"a multi-shot request holds at most {caps.MULTI_SHOT_MAX_SHOTS} shots"
        if sum(s.seconds for s in group) + shot.seconds > caps.MULTI_SHOT_MAX_SECONDS:
            return f"a multi-shot request renders at most {caps.MULTI_SHOT_MAX_SECONDS} s"
        return input_limit_problem(self.findings, [*group, shot])

    def _extra(self, shot: ResolvedShot) -> dict:
        return extra_of(self.findings.board.defaults.extra, shot)

    def _explicit_groups(self, shots: list[ResolvedShot]) -> dict[int, Group]:
        """Validate ``groups``; map each valid group's first shot index to its group."""
        claimed: dict[int, int] = {}
        result: dict[int, Group] = {}
        for g, group in enumerate(self.findings.board.groups):
            indices = self._group_indices(g, group.shots, {s.id: s.index for s in shots}, claimed)
            if not indices:
                continue
            if indices != list(range(indices[0], indices[0] + len(indices))):
                self.findings.error(
                    self.findings.at("groups", g),
                    f"group {g + 1} ({', '.join(group.shots)}) is not consecutive: list shots in storyboard order, "
                    "without gaps",
                )
                continue
            members = [shots[i] for i in indices]
            if group.shot_type == "intelligence":
                intelligent = self._intelligence_group(g, members)
                if intelligent is not None:
                    result[indices[0]] = intelligent
                continue
            if len(members) == 1:  # a group of one is honoured as its own (single-shot) request
                result[indices[0]] = Group(members, multi=False, explicit=g)
                continue
            ok = check_explicit_group(self.findings, g, members)
            for shot in members[1:]:
                if self._extra(shot) != self._extra(members[0]):
                    self.findings.error(
                        self.findings.where(shot, "extra"),
                        f"group {g + 1}: shot {shot.id} differs from shot {members[0].id} in extra; one request "
                        "sends one body: give the shots the same extra, or take the shot out of the group",
                    )
                    ok = False
            if ok:
                total = sum(s.seconds for s in members)
                result[indices[0]] = Group(members, multi=True, explicit=g)
                result[indices[0]].notes.append(
                    f"explicit group {g + 1}: shots {', '.join(s.id for s in members)} in one multi-shot request: "
                    f"{max(total, caps.MULTI_SHOT_MIN_SECONDS)} s on {members[0].model}"
                )
        return result

    def _intelligence_group(self, g: int, members: list[ResolvedShot]) -> Group | None:
        """Group ``g`` as one ``intelligence`` multi-shot request (kling-api-2.md §6), or None when it cannot be.

        Why the notes say so much: Kling reports no shot boundaries (§6.3), so the plan's slices
        put each shot at its nominal offset, and the cut (``check_intelligence_cut``) plays the
        group as one continuous shot so that no caption, transition or trim depends on them.
        """
        if not check_explicit_group(self.findings, g, members):
            return None
        first = members[0]
        standard = caps.NEW_API_MODELS.get(first.model)
        if first.api == caps.NEW_API and standard is not None and not standard.multi_shot_setting:
            self.findings.error(
                self.findings.at("groups", g, "shot_type"),
                f"group {g + 1}: {first.model} has no multi_shot setting on the new API, so Kling cannot split a "
                "prompt into shots itself: use shot_type customize (inline shots), or kling-v3 / kling-v3-omni",
            )
            return None
        group = Group(members, multi=True, explicit=g, intelligence=True)
        total = max(sum(s.seconds for s in members), caps.MULTI_SHOT_MIN_SECONDS)
        group.notes.append(
            f"explicit group {g + 1}: shot_type intelligence: shots {', '.join(s.id for s in members)} are sent as one "
            f"{total} s prompt and Kling splits it into shots itself; it reports no boundaries, so the plan places "
            "each shot at its nominal offset and the cut plays the group as one shot"
        )
        return group

    def _group_indices(self, g: int, shot_ids: list[str], index_of: dict[str, int], claimed: dict[int, int]) -> list[int]:
        """The shot indices of group ``g``; empty when it names an unknown or already grouped shot."""
        indices: list[int] = []
        valid = True
        for k, shot_id in enumerate(shot_ids):
            if shot_id not in index_of:
                self.findings.error(
                    self.findings.at("groups", g, "shots", k), f"group {g + 1} names shot {shot_id!r}, which does not exist"
                )
                valid = False
                continue
            index = index_of[shot_id]
            if index in claimed:
                self.findings.error(
                    self.findings.at("groups", g, "shots", k),
                    f"shot {shot_id} is already in group {claimed[index] + 1}: a shot can be in one group only",
                )
                valid = False
                continue
            claimed[index] = g
            indices.append(index)
        return indices if valid else []


def _frame_refusal(first: ResolvedShot, last: ResolvedShot, shot: ResolvedShot) -> str | None:
    """Frames sit only at a multi-shot request's ends, and an end frame needs a start frame."""
    if shot.spec.start_frame == PREVIOUS_FRAME:
        return f"start_frame previous needs the clip of the request holding shot {last.id}"
    if shot.spec.start_frame:
        return f"shot {shot.id} has its own start frame (only a multi-shot request's first shot can)"
    if last.spec.end_frame:
        return f"shot {last.id} ends on an end frame (only a multi-shot request's last shot can)"
    if shot.spec.end_frame and not first.spec.start_frame:
        return f"shot {shot.id} has an end frame, which needs a start frame on the request's first shot"
    return None


# --- durations ---------------------------------------------------------------------------------------


def durations(findings: Findings, group: Group, inputs: RequestInputs, has_end: bool, notes: list[str]) -> list[int]:
    """Seconds Kling renders for each shot of the group; a note for every second the cut does not keep."""
    if group.multi:
        return _multi_shot_durations(group, notes)
    shot = group.shots[0]
    info = shot.info
    pure_text = inputs.family == OMNI and not inputs.image_refs and not inputs.element_refs and not has_end
    allowed = info.durations_for(pure_text=pure_text)
    rendered = caps.next_allowed_duration(shot.seconds, allowed)
    if rendered is None:
        if shot.spec.duration <= info.max_duration:  # o1 pure text: 5 or 10 only
            findings.error(
                findings.at("shots", shot.index, "duration"),
                f"{info.name} renders {caps.describe_durations(allowed)} for this shot; "
                f"{seconds_text(shot.spec.duration)} does not fit: shorten it",
            )
        rendered = max(allowed)
    if rendered != shot.spec.duration:
        notes.append(
            f"shot {shot.id} renders {rendered} s on {info.name} (allowed: {caps.describe_durations(allowed)}); "
            f"the cut keeps {seconds_text(shot.spec.duration)}"
        )
    return [rendered]


def _multi_shot_durations(group: Group, notes: list[str]) -> list[int]:
    shots = group.shots
    result = [s.seconds for s in shots]
    if group.explicit is None:
        notes.append(
            f"packed shots {', '.join(s.id for s in shots)} into one multi-shot request: "
            f"{max(sum(result), caps.MULTI_SHOT_MIN_SECONDS)} s on {shots[0].info.name}"
        )
    for shot, seconds in zip(shots, result):
        if seconds != shot.spec.duration:
            notes.append(
                f"shot {shot.id} renders {seconds} s (Kling renders whole seconds); the cut keeps {seconds_text(shot.spec.duration)}"
            )
    short = caps.MULTI_SHOT_MIN_SECONDS - sum(result)
    if short > 0:
        result[-1] += short
        notes.append(
            f"the request is under Kling's {caps.MULTI_SHOT_MIN_SECONDS} s multi-shot minimum: shot {shots[-1].id} "
            f"renders {result[-1]} s; the cut keeps {seconds_text(shots[-1].spec.duration)}"
        )
    return result


# --- the cut of an intelligence group -------------------------------------------------------------


def check_intelligence_cut(findings: Findings, groups: list[Group]) -> None:
    """The cut plays each ``intelligence`` group as one continuous shot; refuse, at its line, what would not.

    Why this decision rather than scene detection at cut time: Kling reports no boundaries
    (kling-api-2.md §6.3) and chooses the number of shots itself, so a boundary found by
    scene-change detection cannot be matched to the storyboard's
    shots with certainty, and a caption or transition put at a guessed boundary is paid-for footage
    shown wrong. Played whole, the clip is right whatever Kling chose: the shots' nominal slices
    tile it, so hard cuts between them are invisible. Hence: no caption on a member, whole seconds
    for every member but the last (so no part of the clip is skipped at an unknown boundary), and
    in the cut the members together, in order, joined by hard cuts, trimmed only at the ends.
    """
    board = findings.board
    for group in groups:
        if not group.intelligence or len(group.shots) < 2 or group.explicit is None:
            continue
        g = group.explicit
        ids = [s.id for s in group.shots]
        for shot in group.shots:
            if shot.spec.caption:
                findings.error(
                    findings.at("shots", shot.index, "caption"),
                    f"shot {shot.id} is in intelligence group {g + 1}, whose shot boundaries Kling does not report: "
                    "a caption cannot be placed on it; caption a shot outside the group, or use shot_type customize",
                )
        for shot in group.shots[:-1]:
            if not float(shot.spec.duration).is_integer():
                findings.error(
                    findings.at("shots", shot.index, "duration"),
                    f"shot {shot.id} is in intelligence group {g + 1}, which the cut plays as one shot: every shot but "
                    f"the last needs whole seconds ({seconds_text(shot.spec.duration)} would skip part of the clip at a "
                    "boundary Kling does not report): round it",
                )
        _check_intelligence_entries(findings, g, ids, board)


def _check_intelligence_entries(findings: Findings, g: int, ids: list[str], board: Storyboard) -> None:
    cut = board.cut
    entries = cut.shots if cut.shots is not None else None
    if entries is None:  # the default cut: every shot in order, joined by cut.transition
        if cut.transition.type != "cut":
            findings.error(
                findings.at("cut", "transition"),
                f"intelligence group {g + 1} ({', '.join(ids)}) plays as one shot, but the cut joins every shot with "
                f"{cut.transition.type}: list cut.shots with transition: cut into {', '.join(ids[1:])}",
            )
        return
    positions = [k for k, entry in enumerate(entries) if entry.shot in ids]
    if not positions:
        return
    order = [entries[k].shot for k in positions]
    if order != ids or positions != list(range(positions[0], positions[0] + len(ids))):
        findings.error(
            findings.at("cut", "shots", positions[0]),
            f"intelligence group {g + 1} plays as one shot: list {', '.join(ids)} together and in this order in "
            "cut.shots, each once (Kling does not report where one ends and the next begins)",
        )
        return
    for n, k in enumerate(positions):
        entry = entries[k]
        if entry.caption:
            findings.error(
                findings.at("cut", "shots", k, "caption"),
                f"shot {entry.shot} is in intelligence group {g + 1}, whose shot boundaries Kling does not report: "
                "remove its caption",
            )
        if n > 0:
            transition = entry.transition or cut.transition
            if transition.type != "cut":
                where = findings.at("cut", "shots", k, "transition") if entry.transition else findings.at("cut", "transition")
                findings.error(
                    where,
                    f"shot {entry.shot} is inside intelligence group {g + 1}, which plays as one shot: its transition "
                    "must be cut (set transition: cut on this entry)",
                )
            if entry.trim_in:
                findings.error(
                    findings.at("cut", "shots", k, "trim_in"),
                    f"shot {entry.shot} is inside intelligence group {g + 1}: only the group's first shot can be trimmed "
                    "at its start",
                )
        if n < len(positions) - 1 and entry.trim_out:
            findings.error(
                findings.at("cut", "shots", k, "trim_out"),
                f"shot {entry.shot} is inside intelligence group {g + 1}: only the group's last shot can be trimmed "
                "at its end",
            )
