"""``wav2kp doctor``: check, in seconds, that this environment can run the study.

Each check does the real thing on a tiny input (an MFCC through torchaudio, dlib on the bundled
face photo, an H.264 + AAC file written and decoded back, a pt-BR sentence spoken, a notebook
kernel started) and prints one line; a failure says how to fix it. ``make test`` and
``make study`` run it first, so a broken environment stops with one clear line instead of dozens
of test errors.

Statuses: ``ok``; ``FAIL`` (the study cannot run: the exit code is 1); ``warn`` (it runs, but not
in the environment we test, so its numbers may differ); ``info`` (what the study will use).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wav2kp import config

#: The environment the lock targets and CI runs (see the Makefile's LOCK_PYTHON / LOCK_PLATFORM).
LOCK_FILE: Path = config.REPO_ROOT / "requirements.lock"
LOCK_PYTHON = (3, 11)
#: Disk the full profile needs under WAV2KP_HOME. Measured (benchmarks/study.py, full profile,
#: commit 10aac6b): a fresh study leaves 519 MB in data/ (206 MB of it the synthetic talkers
#: notebook 04 pre-trains on, 129 MB the runs with their kept predictions) and about 20 MB in
#: reports/; 1 GB leaves room for the atomic writes' temporary copies and rebuilt caches.
FULL_STUDY_BYTES = 1_000_000_000

REINSTALL = (
    "reinstall from the lock: .venv/bin/pip install --require-hashes --no-deps "
    "-r requirements.lock (or rm -rf .venv && make test)"
)


@dataclass
class Result:
    status: str  # "ok" | "FAIL" | "warn" | "info"
    detail: str
    fix: str = ""
    name: str = ""  # set by run_check from CHECKS
    seconds: float = 0.0

    def line(self) -> str:
        text = f"[{self.status:^4}] {self.name:<22} {self.detail}"
        if self.fix and self.status in ("FAIL", "warn"):
            text += f" -> fix: {self.fix}"
        return text


class CheckFailed(Exception):
    """Raised by a check with the fix to print beside the problem."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


# --------------------------------------------------------------------------- the checks


def check_python() -> Result:
    here = f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"
    target = (
        sys.version_info[:2] == LOCK_PYTHON
        and sys.platform == "linux"
        and platform.machine() == "x86_64"
    )
    if target:
        return Result("ok", f"{here} (the lock's target)")
    return Result(
        "warn",
        f"{here}; the lock and CI are CPython {'.'.join(map(str, LOCK_PYTHON))} on Linux x86_64",
        "use that Python for numbers that match the study's (make PYTHON=python3.11)",
    )


def read_lock(path: Path = LOCK_FILE) -> dict[str, str]:
    """``{normalised name: version}`` of every ``name==version`` pin in a requirements lock."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if m:
            pins[normalise(m.group(1))] = m.group(2)
    return pins


def normalise(name: str) -> str:
    """PEP 503 name normalisation (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_lock(path: Path = LOCK_FILE) -> Result:
    if not path.is_file():
        return Result(
            "info",
            f"no {path.name} beside the package (installed without "
            "the repository): versions come from pyproject.toml's floors",
        )
    pins = read_lock(path)
    off, missing = [], []
    for name, version in sorted(pins.items()):
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if have.split("+")[0] != version:
            off.append(f"{name} {have} (lock {version})")
    if not off and not missing:
        return Result("ok", f"all {len(pins)} packages at the versions of {path.name}")
    parts = []
    if off:
        parts.append(f"{len(off)} differ: {', '.join(off[:4])}{' ...' if len(off) > 4 else ''}")
    if missing:
        parts.append(
            f"{len(missing)} missing: {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
        )
    return Result("warn", f"not the locked environment: {'; '.join(parts)}", REINSTALL)


def _torch_pair() -> tuple[str, str]:
    try:
        import torch
    except Exception as err:  # noqa: BLE001 - any import failure is the finding
        raise CheckFailed(
            f"torch does not import ({type(err).__name__}: {err})", REINSTALL
        ) from err
    try:
        import torchaudio
    except Exception as err:  # noqa: BLE001
        raise CheckFailed(
            f"torchaudio does not load beside torch {torch.__version__} "
            f"({type(err).__name__}: {str(err).splitlines()[0][:160]})",
            "torch and torchaudio must be one release (torchaudio 2.11.1 does not load beside "
            "torch 2.11.0); " + REINSTALL,
        ) from err
    return torch.__version__, torchaudio.__version__


def check_torch() -> Result:
    import numpy as np

    torch_v, audio_v = _torch_pair()
    from wav2kp.features import acoustic as features

    rate = 16000
    t = np.arange(rate, dtype=np.float32) / rate
    feats, times = features.mfcc(0.1 * np.sin(2 * np.pi * 220 * t).astype(np.float32))
    if not np.isfinite(feats).all():
        raise CheckFailed("the MFCC of a 220 Hz tone holds NaN/inf", REINSTALL)
    return Result(
        "ok",
        f"torch {torch_v} and torchaudio {audio_v} load; MFCC of 1 s at 16 kHz: "
        f"{feats.shape[0]} frames x {feats.shape[1]} coefficients",
    )


def check_dlib() -> Result:
    try:
        import dlib
    except Exception as err:  # noqa: BLE001
        raise CheckFailed(
            f"dlib does not import ({type(err).__name__}: {err})",
            "dlib comes from the dlib-bin wheel; " + REINSTALL,
        ) from err
    from wav2kp import face68
    from wav2kp.corpus import face

    try:
        model = face68.predictor_path()
    except FileNotFoundError as err:
        raise CheckFailed(
            str(err), "face-recognition-models ships the model; " + REINSTALL
        ) from err
    photo = face._face_photo("grace_hopper")
    points = face68.detect_68(photo)
    if points is None:
        raise CheckFailed(
            "dlib found no face in the bundled photo (matplotlib's grace_hopper.jpg)", REINSTALL
        )
    return Result(
        "ok",
        f"dlib {dlib.__version__} and {model.name} "
        f"({model.stat().st_size / 1e6:.0f} MB) find the bundled face "
        f"({photo.shape[1]}x{photo.shape[0]} photo)",
    )


def check_media() -> Result:
    import av
    import numpy as np

    from wav2kp import media

    fps, n, rate = 25, 10, 44100
    frames = [np.full((64, 64, 3), 16 * k, dtype=np.uint8) for k in range(n)]
    audio = (0.2 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="wav2kp-doctor-") as tmp:
        path = Path(tmp) / "check.mp4"
        try:
            media.write_video(path, frames, audio, size=(64, 64), fps=fps, audio_rate=rate)
        except Exception as err:  # noqa: BLE001
            raise CheckFailed(
                f"PyAV {av.__version__} cannot encode H.264 + AAC ({type(err).__name__}: {err})",
                "PyAV's wheel bundles FFmpeg with libx264; " + REINSTALL,
            ) from err
        info = media.probe(path)
        decoded = sum(1 for _ in media.iter_frames(path))
        sound = media.decode_audio(path, rate=16000)
    codecs = f"{info['video_codec']} + {info['audio_codec']}"
    if codecs != "h264 + aac" or decoded != n or abs(len(sound) / 16000 - 0.5) > 0.05:
        raise CheckFailed(
            f"PyAV {av.__version__} wrote {n} H.264 frames and 0.5 s of AAC but "
            f"read back {codecs}, {decoded} frames and {len(sound) / 16000:.3f} s",
            REINSTALL,
        )
    return Result(
        "ok",
        f"PyAV {av.__version__} writes and reads an H.264 + AAC mp4 "
        f"({decoded} frames, {len(sound) / 16000:.2f} s of audio)",
    )


def check_espeak() -> Result:
    from wav2kp.corpus import speech

    try:
        said = speech.synthesize("Bom dia, tudo bem?")
    except (OSError, RuntimeError, ValueError) as err:
        raise CheckFailed(
            f"espeak-ng cannot speak pt-BR ({type(err).__name__}: {err})",
            "libespeak-ng and its pt-BR voice come from the espeakng-loader wheel; " + REINSTALL,
        ) from err
    seconds = len(said.audio) / said.sample_rate
    if seconds < 0.3 or not said.phonemes:
        raise CheckFailed(
            f"espeak-ng spoke {seconds:.2f} s with {len(said.phonemes)} phonemes "
            "for a 4-word sentence",
            REINSTALL,
        )
    return Result(
        "ok",
        f"voice {said.voice!r} speaks a sentence: "
        f"{seconds:.2f} s, {len(said.phonemes)} phonemes at {said.sample_rate} Hz",
    )


def check_kernel() -> Result:
    """Start the kernel papermill will start (``python3``) and import wav2kp in it."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import KernelManager

    from wav2kp import study

    try:
        spec = KernelSpecManager().get_kernel_spec(study.KERNEL_NAME)
    except NoSuchKernel:
        raise CheckFailed(
            f"no Jupyter kernel named {study.KERNEL_NAME!r}", "ipykernel provides it; " + REINSTALL
        ) from None
    km = KernelManager(kernel_name=study.KERNEL_NAME, **study._kernel_config())
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        found: dict[str, str] = {}

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                found["out"] = found.get("out", "") + msg["content"]["text"]
            elif msg["msg_type"] == "error":
                found["error"] = f"{msg['content']['ename']}: {msg['content']['evalue']}"

        kc.execute_interactive(
            "import sys, wav2kp; print(sys.executable)", timeout=60, output_hook=hook
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    if "error" in found:
        raise CheckFailed(
            f"kernel {study.KERNEL_NAME!r} ({spec.resource_dir}) cannot import "
            f"wav2kp: {found['error']}",
            "a kernelspec named python3 of another Python shadows this one; remove "
            "it (jupyter kernelspec list) or run make test, which installs the "
            "project into .venv",
        )
    exe = found.get("out", "").strip()
    same = Path(exe).resolve() == Path(sys.executable).resolve() if exe else False
    return Result(
        "ok" if same else "warn",
        f"papermill's kernel {study.KERNEL_NAME!r} runs {exe} and imports wav2kp",
        ""
        if same
        else f"it is not this Python ({sys.executable}): a python3 "
        "kernelspec of another environment shadows this one (jupyter kernelspec list)",
    )


def training_device() -> tuple[str, str]:
    """``(device, why)``: where Lightning's ``accelerator="auto"`` will train, and why."""
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return "cuda", f"{torch.cuda.device_count()} GPU(s), the first: {name}"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", "Apple GPU (Metal)"
    if torch.version.cuda is None:
        why = f"this torch build ({torch.__version__}) has no CUDA"
    elif os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        why = "CUDA_VISIBLE_DEVICES hides every GPU"
    else:
        why = (
            f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but sees no "
            "NVIDIA GPU (no device or no driver)"
        )
    return "cpu", f"{why}; {torch.get_num_threads()} CPU threads"


def check_device() -> Result:
    device, why = training_device()
    return Result("info", f"{device.upper()}: {why}")


def check_disk(home: Path | None = None, need: int = FULL_STUDY_BYTES) -> Result:
    home = Path(home) if home is not None else config.home()
    probe = home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    text = f"{free / 1e9:.1f} GB free under {home} (the full study needs about {need / 1e9:.1f} GB)"
    if free < need:
        raise CheckFailed(
            text, "free some space there, or set WAV2KP_HOME to a folder on a larger disk"
        )
    return Result("ok", text)


#: The checks in the order they run: (name printed on the line, function).
def check_phones() -> Result:
    from wav2kp.corpus import speech
    from wav2kp.features import phones

    try:
        said = speech.synthesize("Bob bought a map.", voice="en-us", variant="m3")
        from scipy.signal import resample_poly

        heard = phones.recognise(resample_poly(said.audio, 320, 441).astype("float32"))
    except (ImportError, OSError, RuntimeError, ValueError) as err:
        raise CheckFailed(
            f"the phone recogniser does not run ({type(err).__name__}: {err})",
            "pocketsphinx and its English model come from the pocketsphinx wheel; " + REINSTALL,
        ) from err
    spoken = [s for _, _, s in heard if s != "_"]
    if len(spoken) < 4:
        raise CheckFailed(f"the phone recogniser heard {spoken} in a 4-word sentence", REINSTALL)
    return Result("ok", f"PocketSphinx hears {len(spoken)} phones in a 4-word English sentence")


def check_phonetic() -> Result:
    """hama's multilingual phone recogniser and Praat's formants (lever 7's extra channels)."""
    import numpy as np

    from wav2kp.corpus import speech
    from wav2kp.features import phonetic

    try:
        said = speech.synthesize("Bom dia, tudo bem?")
        from scipy.signal import resample_poly

        audio = resample_poly(said.audio, 320, 441).astype("float32")
        times = np.arange(1 + len(audio) // 160) / 100.0
        classes = phonetic.phone_classes(audio, times)
        tracks = phonetic.formant_tracks(audio, times)
    except (ImportError, OSError, RuntimeError, ValueError) as err:
        raise CheckFailed(
            f"the phonetic features do not compute ({type(err).__name__}: {err})",
            "hama and praat-parselmouth come from their wheels; " + REINSTALL,
        ) from err
    pause = phonetic.PHONE_CLASSES.index("pause")
    heard = int((classes.argmax(axis=1) != pause).sum())
    voiced = int((tracks[:, 3] > 0.5).sum())
    if heard < 10 or voiced < 10:
        raise CheckFailed(f"hama heard {heard} phone frames, Praat {voiced} voiced ones", REINSTALL)
    return Result(
        "ok", f"hama hears phones in {heard} of {len(times)} frames, Praat voices {voiced}"
    )


def check_browser() -> Result:
    """Chromium for the page checks (``wav2kp check-pages``, the browser tests): a warning
    without one, since the study itself does not need it."""
    import subprocess

    from wav2kp import browser

    try:
        path = browser.find_chromium()
    except browser.BrowserMissing as err:
        return Result(
            "warn",
            "no Chromium: the page checks (make test's browser tests) are skipped",
            str(err).split(". ", 1)[-1],
        )
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        version = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "?"
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CheckFailed(
            f"{path} does not start ({err})", "reinstall: apt-get install chromium"
        ) from err
    return Result("ok", f"{version} ({path}) for the page checks")


CHECKS: list[tuple[str, Callable[[], Result]]] = [
    ("python", check_python),
    ("lock", check_lock),
    ("torch + torchaudio", check_torch),
    ("dlib 68 points", check_dlib),
    ("PyAV (FFmpeg)", check_media),
    ("espeak-ng pt-BR", check_espeak),
    ("phone recogniser", check_phones),
    ("phonetic features", check_phonetic),
    ("notebook kernel", check_kernel),
    ("training device", check_device),
    ("disk", check_disk),
    ("browser", check_browser),
]


def run_check(name: str, check: Callable[[], Result]) -> Result:
    """Run one check; any exception becomes a ``FAIL`` line that names it."""
    t0 = time.perf_counter()
    try:
        result = check()
    except CheckFailed as err:
        result = Result("FAIL", str(err), err.fix)
    except Exception as err:  # noqa: BLE001 - a broken check is a failed check
        first = str(err).splitlines()[0] if str(err) else ""
        result = Result("FAIL", f"{type(err).__name__}: {first}", REINSTALL)
    result.name = name
    result.seconds = time.perf_counter() - t0
    return result


def run(checks: list[tuple[str, Callable[[], Result]]] | None = None, out=None) -> list[Result]:
    """Run the checks, printing each line as it finishes; returns the results."""
    out = out or sys.stdout
    results = []
    for name, check in checks or CHECKS:
        result = run_check(name, check)
        print(result.line(), file=out, flush=True)
        results.append(result)
    return results


def main(checks: list[tuple[str, Callable[[], Result]]] | None = None, out=None) -> int:
    """Run every check and print a summary; 1 when any check failed, else 0."""
    out = out or sys.stdout
    t0 = time.perf_counter()
    results = run(checks, out=out)
    failed = sum(r.status == "FAIL" for r in results)
    warned = sum(r.status == "warn" for r in results)
    print(
        f"wav2kp doctor: {len(results) - failed - warned} ok or info, {warned} warning(s), "
        f"{failed} failed, in {time.perf_counter() - t0:.1f} s",
        file=out,
        flush=True,
    )
    if failed:
        print("The study cannot run until the failed check(s) above are fixed.", file=out)
    return 1 if failed else 0
