"""How the preview shows a request's elements: the picture each element is made from.

Why: a request that names its subject only through elements (an omni shot with a character
element and no reference image or start frame) would otherwise preview as a card over a neutral
background, with nothing of the subject. An image element looks like its frontal image; a
video-character element like a frame of its clip (the middle keyframe, decoded with PyAV), so
the animatic shows who the element is whichever way it was made.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from storyboard.errors import Rejected
from storyboard.plan import IMAGE_SCHEME, ElementRegistration
from storyboard.render.providers.base import Job


def element_looks(job: Job) -> list[Image.Image]:
    """The look of each element the request registers, in the request's order (RGB images)."""
    return [look for registration in job.request.elements if (look := element_look(job, registration)) is not None]


def element_look(job: Job, registration: ElementRegistration) -> Image.Image | None:
    """One element's picture: its frontal image, or a frame of its clip (None: no local file to show)."""
    if registration.reference_type == "video_refer":
        if registration.video_file is None:
            return None
        return middle_keyframe(job.project_dir / registration.video_file, job.request.id)
    if registration.frontal_image is None:
        return None
    relative = job.request.images.get(registration.frontal_image.removeprefix(IMAGE_SCHEME))
    path = job.images.get(registration.frontal_image) or (job.project_dir / relative if relative else None)
    if path is None or not Path(path).is_file():
        return None
    with Image.open(path) as image:
        return image.convert("RGB")


def middle_keyframe(path: Path, request_id: str) -> Image.Image:
    """The keyframe nearest the middle of a video, as an RGB image.

    Why a keyframe: seeking lands on one, and decoding only it (not every frame up to the middle)
    keeps a preview of an 8 s 1080p clip to one frame's work.
    """
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                container.seek(stream.duration // 2, stream=stream, any_frame=False, backward=True)
            for frame in container.decode(stream):
                return frame.to_image().convert("RGB")
    except (av.FFmpegError, IndexError, OSError) as error:
        raise Rejected(
            f"preview of {request_id}: cannot read the element video {path} ({error})",
            money_spent=False,
            hint="Replace it with a readable mp4 or mov, then render again.",
        ) from error
    raise Rejected(
        f"preview of {request_id}: the element video {path} has no frame",
        money_spent=False,
        hint="Replace it with a readable mp4 or mov, then render again.",
    )
