"""``media`` reads a clip's pixel format from its H.264 parameter sets instead of decoding a picture.

Why these clips: the shortcut is only right if it answers exactly what FFmpeg's decoder answers
(the assembler stream-copies a clip only when it is ``yuv420p``), so each clip is encoded with a
feature that moves a field the SPS reader must step over (profiles, scaling matrices, cropping,
interlacing, VUI colour description) or changes the answer (full range, 4:2:2, 4:4:4, 10-bit),
and the reader's answer is compared with what PyAV decodes. Anything it cannot answer exactly
must come back as None, so the slow, decoding path answers instead.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from storyboard import media

VARIANTS = {
    "baseline": ["-profile:v", "baseline", "-pix_fmt", "yuv420p"],
    "main": ["-profile:v", "main", "-pix_fmt", "yuv420p"],
    "high": ["-pix_fmt", "yuv420p"],
    "full-range": ["-pix_fmt", "yuv420p", "-color_range", "pc"],
    "yuvj420p": ["-pix_fmt", "yuvj420p"],
    "yuv422p": ["-pix_fmt", "yuv422p"],
    "yuv444p": ["-pix_fmt", "yuv444p"],
    "10-bit": ["-pix_fmt", "yuv420p10le"],
    "scaling-matrix": ["-pix_fmt", "yuv420p", "-x264-params", "cqm=jvt"],
    "cropped": ["-pix_fmt", "yuv420p", "-vf", "scale=98:54"],
    "bt709": ["-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"],
    "interlaced": ["-pix_fmt", "yuv420p", "-flags", "+ildct+ilme", "-x264-params", "interlaced=1"],
}


@pytest.fixture(scope="module")
def variant_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("h264-variants")
    clips = {}
    for name, args in VARIANTS.items():
        clip = folder / f"{name}.mp4"
        subprocess.run([media.ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=s=96x64:r=24:d=0.5", "-c:v", "libx264", *args, str(clip)], check=True)
        clips[name] = clip
    return clips


def decoded_pix_fmt(clip: Path) -> str:
    with av.open(str(clip)) as container:  # a normal open: PyAV decodes a picture to learn it
        return container.streams.video[0].codec_context.format.name


def parameter_sets(clip: Path) -> bytes:
    with media.open_packets(clip) as container:
        return bytes(container.streams.video[0].codec_context.extradata or b"")


@pytest.mark.parametrize("name", VARIANTS)
def test_the_sps_reader_answers_what_the_decoder_does_or_nothing(variant_clips, name):
    read = media.h264_pix_fmt(parameter_sets(variant_clips[name]))
    decoded = decoded_pix_fmt(variant_clips[name])
    if decoded in ("yuv420p", "yuvj420p"):
        assert read == decoded
    else:
        assert read is None, (decoded, read)


@pytest.mark.parametrize("name", VARIANTS)
def test_a_scan_reports_the_decoders_pixel_format(variant_clips, name):
    media.forget_cached_facts()
    facts = media.probe(variant_clips[name])
    assert facts.pix_fmt == decoded_pix_fmt(variant_clips[name])
    assert (facts.width, facts.height, facts.frames) == ((98, 54) if name == "cropped" else (96, 64)) + (12,)


def test_a_clip_that_is_not_h264_is_read_by_decoding(tmp_path):
    clip = tmp_path / "mpeg4.mp4"
    subprocess.run([media.ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=24:d=0.5",
                    "-c:v", "mpeg4", "-pix_fmt", "yuv420p", str(clip)], check=True)
    facts = media.probe(clip)
    assert (facts.video_codec, facts.pix_fmt, facts.frames) == ("mpeg4", "yuv420p", 12)


@pytest.mark.parametrize("broken", [b"", b"\x01", b"\x01\x64\x00\x1f\xff\xe1\x00\x40\x67", bytes(64), b"\x00\x00\x00\x01\x67"])
def test_parameter_sets_that_do_not_parse_give_no_answer(broken):
    assert media.h264_pix_fmt(broken) is None
