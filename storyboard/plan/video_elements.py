"""Video-character elements: a reference given as a video, registered as a ``video_refer`` element.

Why a module of its own: a video reference is an element and nothing else. Kling makes it from
one clip (mp4/mov, 3-8 s, 1080p, 16:9 or 9:16, at most 200 MB, a realistic human; kling-api-2.md
§3.1) fetched by URL, clones a human voice it hears in the clip and binds it to the element, and
lets only some models use it. Every other place a reference can go (a start or end frame, an
avatar's face, a motion-control character, a reference image) needs a picture, so each of those
uses is refused at its line by the loader (``load.loader``), before anything is planned.

Where the sources disagree (kling-api-2.md §2.1, §3.1, §3.3):

* models: the element page says "kling-video-o3 and later" (kling-v3-omni); the capability map also
  lists video-character elements for Kling 3.0 image-to-video. Both are accepted; a kling-v3
  request says in its notes that this use rests on the capability map only. kling-video-o1 takes
  multi-image elements only: refused.
* with a reference video: the 2026-03 page allows no video-character element, the 2026-09 page at
  most one (never with multi-image elements or reference images). The newer rule is enforced; an
  advisory names the older one.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from storyboard.plan import ELEMENT_SCHEME, VIDEO_SCHEME, ElementRegistration
from storyboard.plan.capabilities import IMAGE2VIDEO, OMNI
from storyboard.plan.kinds import MB, VideoLimits, safe_media_digest, video_facts

if TYPE_CHECKING:
    from storyboard.load.loader import LoadedStoryboard
    from storyboard.load.spec import Storyboard
    from storyboard.plan import VoiceRegistration
    from storyboard.plan.rules import Findings
    from storyboard.plan.shots import RequestInputs, ResolvedShot

VIDEO_ELEMENT_LIMITS = VideoLimits("a video-character element's clip", 200 * MB, 1080, 1920, 3, 8)
"""§3.1: mp4/mov, at most 200 MB, 3-8 s; its sides are checked to be exactly 1080p below."""
VIDEO_ELEMENT_SIZES = frozenset({(1920, 1080), (1080, 1920)})
"""1080p at 16:9 or 9:16: the only frame sizes Kling makes a video-character element from."""

VIDEO_ELEMENT_FAMILIES: dict[str, str] = {"kling-v3-omni": OMNI, "kling-v3": IMAGE2VIDEO}
"""Model -> the request family where it takes a video-character element (§3.1)."""
CAPABILITY_MAP_ONLY = frozenset({"kling-v3"})
"""Models whose video-element support comes from Kling's capability map only (the element page disagrees)."""


def is_video_reference(board: Storyboard, ref: str | None) -> bool:
    """Whether ``ref`` names a reference given as a video (a video-character element)."""
    reference = board.references.get(ref) if ref is not None else None
    return reference is not None and reference.video is not None


def check_video_reference(findings: Findings, ref: str) -> None:
    """The clip's own limits, probed with PyAV, each at the reference's ``video`` line (once per reference)."""
    reference = findings.board.references[ref]
    assert reference.video is not None
    location = findings.at("references", ref, "video")
    facts = video_facts(findings, location, reference.video, VIDEO_ELEMENT_LIMITS)
    limits = VIDEO_ELEMENT_LIMITS
    if facts is not None and limits.min_side <= min(facts.width, facts.height) and \
            max(facts.width, facts.height) <= limits.max_side and (facts.width, facts.height) not in VIDEO_ELEMENT_SIZES:
        findings.error(
            location,
            f"{reference.video} is {facts.width}x{facts.height}: Kling makes a video-character element from a "
            "1080p clip at 16:9 or 9:16 only (1920x1080 or 1080x1920): export it at one of those sizes",
        )
    element = reference.element
    if reference.url is None and element is not None and element.element_id is None:
        findings.advise(
            location,
            f"{reference.video} has no url: Kling fetches element videos by URL only, so only the preview provider "
            f"can render the shots that use {ref}; add url: to register the element on Kling",
        )


def check_video_elements_in_request(
    findings: Findings, shots: list[ResolvedShot], family: str, inputs: RequestInputs, has_reference_video: bool
) -> list[str]:
    """Whether this request's model and inputs take its video-character elements; returns the plan notes."""
    board = findings.board
    first = shots[0]
    model = first.model
    video_refs = [ref for ref in inputs.element_refs if is_video_reference(board, ref)]
    elsewhere = [ref for ref in (*inputs.image_refs, *inputs.text_refs) if is_video_reference(board, ref)]
    notes: list[str] = []
    for ref in [*video_refs, *elsewhere]:
        holder = next(s for s in shots if ref in s.spec.references)
        where = findings.at("shots", holder.index, "references")
        if model == "kling-video-o1":
            findings.error(where, f"kling-video-o1 takes multi-image elements only, and reference {ref} is a video "
                                  "(a video-character element): use kling-v3-omni, or give the element images")
        elif VIDEO_ELEMENT_FAMILIES.get(model) != family:
            findings.error(
                where,
                f"reference {ref} is a video-character element, which Kling takes on kling-v3-omni and kling-v3 "
                f"image-to-video only (this request is {model} {family}): use kling-v3-omni"
                + (", or give the shot a start_frame" if model == "kling-v3" else ""),
            )
    if not video_refs or elsewhere:
        return notes
    if model in CAPABILITY_MAP_ONLY:
        notes.append(
            f"video-character element(s) {', '.join(video_refs)} on {model} image-to-video: Kling's capability map "
            "lists them there, its element page only for kling-v3-omni (kling-api-2.md §3.1): unverified"
        )
    for ref in video_refs:
        element = board.references[ref].element
        if element is not None and element.element_id is None and element.voice_id is None and element.voice is None:
            notes.append(f"element {ref} is registered from its clip (video_refer): if the clip has a human voice, "
                         "Kling clones it and binds it to the element; the run and storyboard status show it")
    if has_reference_video:
        where = findings.at("shots", first.index, "references")
        image_elements = [r for r in inputs.element_refs if r not in video_refs]
        if len(video_refs) > 1:
            findings.error(where, f"with a reference video Kling takes at most 1 video-character element (this "
                                  f"request has {len(video_refs)}: {', '.join(video_refs)}): keep one")
        if image_elements:
            findings.error(where, f"with a reference video Kling never mixes a video-character element with "
                                  f"multi-image elements ({', '.join(image_elements)}): keep one kind")
        if inputs.image_refs:
            findings.error(where, "with a reference video Kling takes no reference images beside a video-character "
                                  f"element ({', '.join(inputs.image_refs)}): drop them or the element")
        findings.advise(where, "Kling's 2026-03 page allows no video-character element with a reference video; "
                               "its 2026-09 page at most one: this plan follows the newer page")
    return notes


def video_element_registration(
    loaded: LoadedStoryboard, ref: str, voice_id: str | None, custom_voice: VoiceRegistration | None
) -> ElementRegistration:
    """The ``video_refer`` registration of a video reference (its element id unknown until registered).

    Its identity digest hashes the clip's content, its URL and the bound voice: another clip,
    another address Kling fetches from, or another voice is another element on the account.
    """
    board = loaded.storyboard
    reference = board.references[ref]
    element = reference.element
    assert reference.video is not None and element is not None
    video_digest = safe_media_digest(loaded.resolve_path(reference.video), reference.video)
    identity = f"video:{video_digest}\nurl:{reference.url or ''}"
    if voice_id is not None:
        identity += f"\nvoice:{voice_id}"
    description = element.description or reference.description or ref
    return ElementRegistration(
        placeholder=ELEMENT_SCHEME + hashlib.sha256(identity.encode()).hexdigest(),
        reference=ref,
        name=(element.name or ref)[:20],
        description=description[:100],
        reference_type="video_refer",
        frontal_image=None,
        refer_images=[],
        video_url=reference.url or VIDEO_SCHEME + video_digest,
        video_file=reference.video,
        tags=list(element.tags),
        voice_id=voice_id,
        custom_voice=custom_voice,
    )
