"""The bundled corpus: a synthetic CH-Unicamp of the same shape, with ground truth.

22 OCC emotions x 3 Brazilian-Portuguese sentences, each spoken with the emotion and neutrally:
132 clips ``Em<E>_Fala<S>[_Neutra]_Sintetica.mp4`` (H.264 + AAC 44.1 kHz, 30000/1001 fps, 384 px
square, face about 225 px wide). Speech is espeak-ng ``pt-br`` (:mod:`wav2kp.corpus.speech`) with
the emotion in rate, pitch, pitch range and loudness, over four female voice variants; the face is
a real photo animated from the phoneme timeline (:mod:`wav2kp.corpus.face`).

Per clip, ``groundtruth/<clip>.npz`` holds the keypoints that the frames were rendered from:
``points`` float32 ``(T, 68, 2)`` pixels, ``times`` ``(T,)`` seconds (frame k at k*1001/30000),
``phoneme_start``/``phoneme_end`` seconds and ``phoneme_symbol`` (espeak mnemonics), the
articulatory ``params`` ``(T, 5)``, ``blink`` and ``head`` transforms, and the clip's metadata.
Built clips are cached by a key of everything that produced them; writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from wav2kp import config, parallel, shapes
from wav2kp.corpus import face as face_mod
from wav2kp.corpus import speech
from wav2kp.corpus.discovery import emotion_table
from wav2kp.corpus.face import Expression, FaceModel, load_template
from wav2kp.corpus.speech import Prosody, is_pause
from wav2kp.manifest import package_versions, write_json_atomic, write_npz_atomic
from wav2kp.media import write_video

if TYPE_CHECKING:
    import pandas as pd

GENERATOR_VERSION = "4"
SPEAKER = "Sintetica"
FPS = Fraction(30000, 1001)
AUDIO_RATE = 44100
FRAME_SIZE = 384
FACE = "grace_hopper"
VARIANTS = ("f1", "f2", "f3", "f4")  # espeak-ng female variants: four voices, one "actress"
LEAD_S, TAIL_S = 0.4, 0.4  # silence before and after the sentence
QUICK = {"emotions": [1, 8, 14, 20], "sentences": [1, 2, 3]}  # 24 clips: joy, fear, shame, anger


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides one clip."""

    emotion: int
    sentence: int
    neutral: bool
    text: str
    variant: str
    speaker: str = SPEAKER

    @property
    def name(self) -> str:
        return (
            f"Em{self.emotion}_Fala{self.sentence}{'_Neutra' if self.neutral else ''}_"
            f"{self.speaker}"
        )


def sentences() -> dict[int, list[str]]:
    """``{emotion: [sentence 1, 2, 3]}`` of the bundled corpus."""
    text = resources.files("wav2kp.corpus").joinpath("sentences.yaml").read_text("utf-8")
    return {int(k): list(v) for k, v in yaml.safe_load(text).items()}


def clip_specs(subset: str | dict = "full") -> list[ClipSpec]:
    """Clips of a subset: ``"full"`` (132), ``"quick"`` (24: emotions 1, 8, 14 and 20,
    sentences 1-3, both takes) or ``{"emotions": [...], "sentences": [...]}``."""
    if subset == "quick":
        subset = QUICK
    table = sentences()
    if subset == "full":
        subset = {"emotions": sorted(table), "sentences": [1, 2, 3]}
    if not isinstance(subset, dict):
        raise ValueError(f"subset must be 'quick', 'full' or a mapping, got {subset!r}.")
    specs = []
    for e in subset.get("emotions", sorted(table)):
        if e not in table:
            raise ValueError(f"No emotion {e} in the bundled corpus (1..{len(table)}).")
        for s in subset.get("sentences", [1, 2, 3]):
            if not 1 <= s <= len(table[e]):
                raise ValueError(f"No sentence {s} for emotion {e} (1..{len(table[e])}).")
            variant = VARIANTS[(3 * (e - 1) + (s - 1)) % len(VARIANTS)]
            for neutral in (False, True):
                specs.append(ClipSpec(e, s, neutral, table[e][s - 1], variant))
    return specs


def style(spec: ClipSpec):
    """Prosody, facial expression and head-motion amplitude of a clip (neutral: all default)."""

    if spec.neutral:
        return Prosody(rate=165), Expression(), 0.5
    row = emotion_table().loc[spec.emotion]
    v, a = float(row["valence"]), float(row["arousal"])
    prosody = Prosody(
        rate=int(round(165 + 60 * (a - 0.5))),
        pitch=int(np.clip(round(50 + 10 * v + 14 * (a - 0.5)), 0, 100)),
        pitch_range=int(np.clip(round(50 + 50 * (a - 0.4)), 0, 100)),
        volume=int(np.clip(round(100 + 50 * (a - 0.5)), 0, 200)),
    )
    return (
        prosody,
        Expression(smile=v, brow=float(row["brow"]), eyes=float(row["eyes"])),
        0.4 + 0.6 * a,
    )


def _versions() -> dict[str, str]:
    return package_versions(
        ("espeakng-loader", "dlib-bin", "av", "numpy", "opencv-python-headless")
    )


def clip_key(spec: ClipSpec, seed: int) -> str:
    """Cache key: a hash of everything that decides the clip's bytes."""
    prosody, expression, amp = style(spec)
    payload = {
        "generator": GENERATOR_VERSION,
        "spec": asdict(spec),
        "seed": seed,
        "prosody": asdict(prosody),
        "expression": asdict(expression),
        "amp": amp,
        "face": FACE,
        "size": FRAME_SIZE,
        "fps": str(FPS),
        "audio_rate": AUDIO_RATE,
        "lead": LEAD_S,
        "tail": TAIL_S,
        "versions": _versions(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _clip_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def frame_times(duration: float | Fraction, fps: Fraction = FPS) -> np.ndarray:
    """Times (s) of the frames k/fps that fall inside ``[0, duration)``.

    Pass an exact ``Fraction`` (e.g. ``Fraction(n_samples, rate)``) where you have one; a float
    duration within 1 ns of a whole number of frames counts as that number.
    """
    exact = (
        duration if isinstance(duration, Fraction) else Fraction(duration).limit_denominator(10**9)
    )
    n = max(math.ceil(exact * fps), 0)
    return np.arange(n) * float(1 / fps)


@dataclass
class ClipData:
    """A rendered clip in memory (before it is written)."""

    spec: ClipSpec
    audio: np.ndarray  # float32 mono at AUDIO_RATE
    times: np.ndarray  # (T,) s
    points: np.ndarray  # (T, 68, 2) float32 px
    params: np.ndarray  # (T, 5)
    blink: np.ndarray  # (T,)
    head: np.ndarray  # (T, 2, 3)
    phonemes: list  # [(start, end, symbol)]
    prosody: dict = field(default_factory=dict)


def synthesize_clip(spec: ClipSpec, seed: int = 0) -> ClipData:
    """Speech, timeline and keypoints of a clip (no pixels yet)."""
    from scipy.signal import resample_poly

    prosody, expression, amp = style(spec)
    sp = speech.synthesize(spec.text, variant=spec.variant, prosody=prosody)
    audio = resample_poly(sp.audio.astype(np.float64), AUDIO_RATE, sp.sample_rate)
    lead, tail = int(round(LEAD_S * AUDIO_RATE)), int(round(TAIL_S * AUDIO_RATE))
    audio = np.concatenate([np.zeros(lead), audio, np.zeros(tail)]).astype(np.float32)
    audio = np.clip(audio, -1.0, 1.0)
    phonemes = [(p.start + LEAD_S, p.end + LEAD_S, p.symbol) for p in sp.phonemes]
    times = frame_times(Fraction(len(audio), AUDIO_RATE))
    rng = np.random.default_rng(_clip_seed(seed, spec.name))
    model = _face_model()
    params = face_mod.articulation(phonemes, times)
    blink = face_mod.blink_track(times, rng)
    head = model.head_transforms(times, rng, amplitude=amp)
    points = model.keypoints(params, head, expression, blink).astype(np.float32)
    return ClipData(spec, audio, times, points, params, blink, head, phonemes, asdict(prosody))


_MODEL = None


def _face_model():
    global _MODEL
    if _MODEL is None:
        _MODEL = FaceModel(load_template(FACE, FRAME_SIZE))
    return _MODEL


def gt_path(out_dir: Path, clip: str) -> Path:
    return Path(out_dir) / "groundtruth" / f"{clip}.npz"


def is_current(out_dir: Path, spec: ClipSpec, seed: int) -> bool:
    """True when the clip's mp4 and ground truth exist and were made by the same inputs."""
    video, gt = Path(out_dir) / f"{spec.name}.mp4", gt_path(out_dir, spec.name)
    if not (video.is_file() and gt.is_file()):
        return False
    try:
        with np.load(gt) as z:
            return str(z["key"]) == clip_key(spec, seed)
    except (OSError, KeyError, ValueError):
        return False


def build_clip(spec: ClipSpec, out_dir: Path, seed: int = 0) -> dict:
    """Render and write one clip (mp4 + ground truth), atomically. Returns a summary row."""
    out_dir = Path(out_dir)
    (out_dir / "groundtruth").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    clip = synthesize_clip(spec, seed)
    model = _face_model()
    frames = (model.render(p, h) for p, h in zip(clip.points.astype(np.float64), clip.head))
    write_video(
        out_dir / f"{spec.name}.mp4",
        frames,
        clip.audio,
        model.template.size,
        fps=FPS,
        audio_rate=AUDIO_RATE,
    )  # atomic
    starts = np.array([p[0] for p in clip.phonemes])
    write_npz_atomic(
        gt_path(out_dir, spec.name),
        points=clip.points,
        times=clip.times,
        params=clip.params.astype(np.float32),
        blink=clip.blink.astype(np.float32),
        head=clip.head.astype(np.float32),
        phoneme_start=starts,
        phoneme_end=np.array([p[1] for p in clip.phonemes]),
        phoneme_symbol=np.array([p[2] for p in clip.phonemes]),
        fps_num=FPS.numerator,
        fps_den=FPS.denominator,
        size=np.array(model.template.size),
        audio_rate=AUDIO_RATE,
        duration=len(clip.audio) / AUDIO_RATE,
        text=spec.text,
        variant=spec.variant,
        emotion=spec.emotion,
        sentence=spec.sentence,
        neutral=spec.neutral,
        speaker=spec.speaker,
        prosody=json.dumps(clip.prosody),
        key=clip_key(spec, seed),
        generator=GENERATOR_VERSION,
        face=FACE,
    )
    return {
        "clip": spec.name,
        "frames": len(clip.times),
        "duration_s": len(clip.audio) / AUDIO_RATE,
        "build_s": time.perf_counter() - t0,
    }


def _build_one(spec: ClipSpec, out_dir: Path, seed: int) -> tuple[ClipSpec, dict | None, str]:
    try:
        return spec, build_clip(spec, out_dir, seed), ""
    except Exception as err:  # one bad clip must not spoil the others
        return spec, None, f"{type(err).__name__}: {err}"


@dataclass
class BuildReport:
    out_dir: Path
    n_built: int
    n_cached: int
    failures: list[tuple[str, str]]
    wall_s: float
    built: list[dict]


def build(
    out_dir: Path | None = None,
    subset: str | dict = "full",
    n_jobs: int = -1,
    seed: int = 0,
    progress: bool = True,
    force: bool = False,
    cluster=None,
) -> BuildReport:
    """Build the bundled corpus (or a subset) into ``out_dir`` (default ``data/raw/bundled``).

    Clips already built from the same inputs are kept; the rest are rendered in parallel:
    joblib with ``n_jobs`` workers, or on a Dask cluster (``cluster``, see
    :mod:`wav2kp.parallel`). Writes ``corpus.json`` (parameters, versions, clip keys). A clip
    that fails is reported in ``BuildReport.failures``; the others complete.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    out_dir = Path(out_dir) if out_dir else config.raw_dir("bundled")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Leftovers of an interrupted build (never read as clips: hidden, ".partial" names).
    for stale in [*out_dir.glob(".*.partial.*"), *out_dir.glob("groundtruth/.*.partial.*")]:
        stale.unlink(missing_ok=True)
    specs = clip_specs(subset)
    todo = [s for s in specs if force or not is_current(out_dir, s, seed)]
    built, failures = [], []
    if todo:
        results = parallel.imap_unordered(
            _build_one,
            [(s, out_dir, seed) for s in todo],
            n_jobs=n_jobs,
            cluster=cluster,
            on_error=lambda args, err: (args[0], None, f"{type(err).__name__}: {err}"),
        )
        for _, (spec, row, error) in tqdm(
            results, total=len(todo), disable=not progress, desc="bundled corpus", unit="clip"
        ):
            if row is None:
                failures.append((spec.name, error))
            else:
                built.append(row)
    _write_manifest(out_dir, seed)
    return BuildReport(
        out_dir,
        len(built),
        len(specs) - len(todo),
        failures,
        time.perf_counter() - t0,
        sorted(built, key=lambda r: r["clip"]),
    )


def _write_manifest(out_dir: Path, seed: int) -> None:
    """``corpus.json``: what produced the clips that are present now."""
    clips = []
    for spec in clip_specs("full"):
        if is_current(out_dir, spec, seed):
            clips.append(
                {
                    "clip": spec.name,
                    "key": clip_key(spec, seed),
                    "text": spec.text,
                    "variant": spec.variant,
                }
            )
    manifest = {
        "corpus": "bundled",
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "face": FACE,
        "frame_size": FRAME_SIZE,
        "fps": str(FPS),
        "audio_rate": AUDIO_RATE,
        "speaker": SPEAKER,
        "variants": list(VARIANTS),
        "versions": _versions(),
        "clips": clips,
    }
    write_json_atomic(out_dir / "corpus.json", manifest)


def load_groundtruth(path: Path) -> dict:
    """A ground-truth ``.npz`` as a dict of arrays and plain values."""
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    for k, v in list(out.items()):
        if isinstance(v, np.ndarray) and v.ndim == 0:
            out[k] = v.item()
    out["fps"] = Fraction(int(out["fps_num"]), int(out["fps_den"]))
    return out


def ensure_built(
    subset: str | dict = "quick",
    out_dir: Path | None = None,
    n_jobs: int = -1,
    seed: int = 0,
    progress: bool = True,
    cluster=None,
) -> BuildReport:
    """Build whatever is missing of ``subset`` (a no-op when everything is current)."""
    return build(
        out_dir=out_dir,
        subset=subset,
        n_jobs=n_jobs,
        seed=seed,
        progress=progress,
        cluster=cluster,
    )


def select(clips: pd.DataFrame, subset: str) -> pd.DataFrame:
    """The rows of a bundled clip table that belong to ``subset`` (``quick`` or ``full``)."""
    return clips[clips["clip"].isin(subset_names(subset))].reset_index(drop=True)


def subset_names(subset: str | dict) -> Sequence[str]:
    return [s.name for s in clip_specs(subset)]


def statistics(out_dir: Path | None = None, clips: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-clip statistics of a built bundled corpus, from its ground truth: duration (s),
    frames, spoken phonemes, phonemes per second, mouth opening (mean and max, % of the
    inter-ocular distance), face width (px), voice variant and prosody."""
    import pandas as pd

    out_dir = Path(out_dir) if out_dir else config.raw_dir("bundled")
    names = (
        clips
        if clips is not None
        else sorted(
            p.stem for p in (out_dir / "groundtruth").glob("*.npz") if not p.name.startswith(".")
        )
    )
    rows = []
    for name in names:
        gt = load_groundtruth(gt_path(out_dir, name))
        pts = gt["points"]
        opening = 100 * shapes.mouth_opening(pts) / shapes.inter_ocular(pts)
        spoken = [s for s in gt["phoneme_symbol"] if not is_pause(str(s))]
        speech_s = float(gt["phoneme_end"][-1] - gt["phoneme_start"][0])
        prosody = json.loads(gt["prosody"])
        rows.append(
            {
                "clip": name,
                "emotion": int(gt["emotion"]),
                "neutral": bool(gt["neutral"]),
                "variant": gt["variant"],
                "duration_s": float(gt["duration"]),
                "frames": len(gt["times"]),
                "phonemes": len(spoken),
                "phonemes_per_s": len(spoken) / speech_s if speech_s > 0 else float("nan"),
                "mouth_open_mean": float(opening.mean()),
                "mouth_open_max": float(opening.max()),
                "face_width_px": float(np.linalg.norm(pts[:, 16] - pts[:, 0], axis=-1).min()),
                "rate_wpm": prosody["rate"],
                "pitch": prosody["pitch"],
            }
        )
    return pd.DataFrame(rows)
