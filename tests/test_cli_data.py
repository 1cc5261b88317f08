"""``caa synth`` and ``caa check``: exit codes and what they print."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from caalib.cli import main
from caalib.synth import SYNTH_PROFILES, SynthProfile

MICRO = SynthProfile("micro", clip_seconds=0.5, train_a=10, evaluate_a=10, train_bc=10,
                     evaluate_bc=0, clips_per_location=1, no_split_a=3, workers=1)


def test_check_ok(tiny_dataset_2019: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tiny_dataset_2019)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no warnings either
    out = captured.out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("OK")
    assert "dcase2019 layout, 155 clips (A 95, B 30, C 30)" in out[0]
    assert "no split 5" in out[0]


def test_check_lists_problems(tiny_dataset_2018: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset_2018, root)
    victim = sorted((root / "audio").glob("*-b.wav"))[0]
    victim.write_bytes(victim.read_bytes()[:1000])
    meta = root / "meta.csv"
    lines = meta.read_text().splitlines()
    lines[3] = lines[3].replace("\tairport\t", "\tbeach\t")
    meta.write_text("\n".join(lines) + "\n")
    assert main(["check", str(root), "--quick"]) == 1
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert any("meta.csv line 4: unknown scene label 'beach'" in line for line in out)
    assert any(victim.name in line and "truncated" in line for line in out)
    assert captured.err.splitlines()[-1] == f"caa check: {len(out)} problems, 0 warnings in {root}"


def test_check_prints_warnings_apart_and_still_passes(
        tiny_dataset_2018: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Implausible but usable audio: a warning on stderr, exit 0, the OK line says so."""
    import numpy as np
    import soundfile as sf

    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset_2018, root)
    victim = sorted((root / "audio").glob("*-b.wav"))[0]
    sf.write(victim, np.full((16000, 1), 0.1), 8000, subtype="PCM_16")  # 2 s at 8 kHz
    assert main(["check", str(root)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"OK {root}: ") and "(1 warning on stderr)" in captured.out
    err = captured.err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"caa check: warning: {victim}: sample rate 8000 Hz")
    assert f"{root / 'meta.csv'} line " in err[0]


def test_check_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "none")]) == 1
    assert "not a directory" in capsys.readouterr().out


def test_synth_then_skip_existing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(SYNTH_PROFILES, "micro", MICRO)
    out = tmp_path / "data"
    args = ["synth", str(out), "--profile", "micro", "--layout", "dcase2019", "--seed", "2",
            "--quiet"]
    assert main(args + ["--skip-existing"]) == 0
    assert "43 clips (A 23, B 10, C 10)" in capsys.readouterr().out
    stamp = (out / "meta.csv").stat().st_mtime_ns
    assert main(args + ["--skip-existing"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (out / "meta.csv").stat().st_mtime_ns == stamp
    # other settings: refuse to overwrite, say why
    assert main(args[:-2] + ["3", "--quiet", "--skip-existing"]) == 1
    assert "not empty" in capsys.readouterr().err
    assert main(args) == 1
    assert "caa synth: error:" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["dcase2018", "dcase2019", "dcase2020"])
def test_skip_existing_rewrites_stale_evidence_only(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str],
                                                    layout: str) -> None:
    """Masks of an older definition (or none) are rewritten; the audio is left alone and
    the rewritten masks are the ones a fresh synthesis gives."""
    from dataclasses import replace

    import numpy as np

    from caalib.synth.evidence import EVIDENCE_FILE, EVIDENCE_VERSION

    micro = replace(MICRO, evaluate_bc=2)  # the 2020 layout scores phones too
    monkeypatch.setitem(SYNTH_PROFILES, "micro", micro)
    out = tmp_path / "data"
    args = ["synth", str(out), "--profile", "micro", "--seed", "1", "--quiet", "--skip-existing",
            "--layout", layout]
    assert main(args) == 0
    capsys.readouterr()
    with np.load(out / EVIDENCE_FILE) as z:
        fresh = {k: z[k] for k in z.files}
    audio = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "audio").iterdir()}
    # an older definition's file: version 1, masks all False
    stale = dict(fresh, version=np.array(EVIDENCE_VERSION - 1),
                 scene=np.zeros_like(fresh["scene"]), shared=np.zeros_like(fresh["shared"]))
    np.savez_compressed(out / EVIDENCE_FILE, **stale)
    for broken in ("old version", "missing"):
        assert main(args) == 0, broken
        said = capsys.readouterr().out
        assert "rewrote its evidence masks" in said and "audio is unchanged" in said, broken
        with np.load(out / EVIDENCE_FILE) as z:
            assert int(z["version"]) == EVIDENCE_VERSION
            for key in ("filename", "scene", "shared"):
                np.testing.assert_array_equal(z[key], fresh[key])
        (out / EVIDENCE_FILE).unlink()
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes())
            for p in (out / "audio").iterdir()} == audio
    # a dataset whose profile has changed since is not patched: synthesise it again
    (out / EVIDENCE_FILE).unlink()
    monkeypatch.setitem(SYNTH_PROFILES, "micro", replace(micro, clips_per_location=2))
    assert main(args) == 1
    assert "its profile_settings are not profile micro's" in capsys.readouterr().err


def test_synth_rejects_unknown_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["synth", str(tmp_path / "x"), "--profile", "huge"]) == 1
    assert "unknown profile 'huge'; allowed: tiny, demo, full" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x"), "--seed", "-1"]) == 1
    assert not (tmp_path / "x").exists()


def test_synth_profile_names_match_the_generator() -> None:
    from caalib.commands.data import SYNTH_PROFILE_NAMES
    from caalib.synth import SYNTH_PROFILES

    assert tuple(SYNTH_PROFILES) == SYNTH_PROFILE_NAMES
