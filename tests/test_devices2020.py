"""The DCASE 2020 layout (simulated devices, evaluate-only devices), the unseen-device
policies and the training-time augmentations (docs/unseen-devices.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import signal, stats

from caalib.constants import ALL_DEVICES, SIMULATED_DEVICES
from caalib.errors import ConfigError, DatasetError

pytestmark = pytest.mark.usefixtures("one_thread")

SEEN = ("a", "b", "c", "s1", "s2", "s3")
UNSEEN = ("s4", "s5", "s6")


@pytest.fixture(scope="module")
def tiny2020(tiny_dataset_2020: Path) -> Path:
    return tiny_dataset_2020  # conftest.py: one per session, shared with test_unseen.py


@pytest.fixture(scope="module")
def features2020(tiny_features_2020: Path) -> Path:
    return tiny_features_2020


@pytest.fixture(scope="module")
def joint_run(tiny2020: Path, features2020: Path, tmp_path_factory) -> tuple[Path, dict]:
    from caalib.training import TrainConfig, train

    cfg = TrainConfig.from_profile("tiny", dataset="dcase2020", accelerator="cpu",
                                   iterations=10, eval_every=10, checkpoint_every=10)
    run = tmp_path_factory.mktemp("runs") / cfg.run_name
    return run, train(cfg, run, data_dir=tiny2020, progress=False)


# ---------------------------------------------------------------------- the layout
def test_2020_layout_reads_and_checks(tiny2020: Path):
    from caalib.datasets import check_dataset, detect_layout, read_dataset

    assert detect_layout(tiny2020) == "dcase2020"
    assert check_dataset(tiny2020) == []
    df = read_dataset(tiny2020)
    by = pd.crosstab(df["source_label"], df["split"])
    # the tiny profile: 60 A train clips, 20 per twin device; 10 of every device evaluated
    assert by.loc["a", "train"] == 60
    for dev in ("b", "c", "s1", "s2", "s3"):
        assert by.loc[dev, "train"] == 20
    for dev in ALL_DEVICES:
        assert by.loc[dev, "evaluate"] == 10
    for dev in UNSEEN:
        assert dev not in set(df.loc[df["split"] == "train", "source_label"])
    setup = tiny2020 / "evaluation_setup"
    assert (setup / "fold1_train.csv").read_text().splitlines()[0] == "filename\tscene_label"
    assert (setup / "fold1_evaluate.csv").read_text().splitlines()[0] == "filename\tscene_label"
    test = (setup / "fold1_test.csv").read_text().splitlines()
    assert test[0] == "filename" and len(test) == 1 + 90
    assert any(f.endswith("-s4.wav") for f in df["filename"])


def test_2020_audio_is_44k_mono_24bit(tiny2020: Path):
    import soundfile as sf

    for dev in ("a", "b", "s1", "s6"):
        path = next((tiny2020 / "audio").glob(f"*-{dev}.wav"))
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (44_100, 1, "PCM_24")


def test_simulated_devices_are_a_audio_through_another_response(tiny2020: Path):
    """An S clip is its A twin through the phone's band-limits: little energy left far
    above the phone's low-pass corner, where the A twin still has plenty."""
    import soundfile as sf

    from caalib.synth.devices import PHONES

    s5 = sorted((tiny2020 / "audio").glob("*-s5.wav"))[0]
    a = s5.with_name(s5.name.replace("-s5.wav", "-a.wav"))
    xs, sr = sf.read(str(s5))
    xa, _ = sf.read(str(a))
    f, pa = signal.welch(xa, sr, nperseg=2048)
    _, ps = signal.welch(xs, sr, nperseg=2048)
    high = f > 2 * PHONES["s5"].lowpass_hz
    ratio_db = 10 * np.log10(ps[high].sum() / ps.sum()) - 10 * np.log10(pa[high].sum() / pa.sum())
    assert ratio_db < -20


def test_a_simulated_device_in_a_2018_layout_is_a_problem(tiny2020: Path, tmp_path: Path):
    from caalib.datasets import check_dataset, read_dataset

    copy = tmp_path / "mixed"
    shutil.copytree(tiny2020, copy)
    setup = copy / "evaluation_setup"
    for split in ("train", "evaluate"):  # the 2018 fold style: .txt, no header
        lines = (setup / f"fold1_{split}.csv").read_text().splitlines()[1:]
        (setup / f"fold1_{split}.txt").write_text("\n".join(lines) + "\n")
        (setup / f"fold1_{split}.csv").unlink()
    problems = check_dataset(copy, deep=False)
    assert problems and any("meta.csv line" in p and "'s1'" in p and "dcase2018" in p
                            for p in problems)
    with pytest.raises(DatasetError, match="not a device of the dcase2018 layout"):
        read_dataset(copy)


def test_device_tables_list_every_device_present(tiny2020: Path, tiny_dataset_2018: Path):
    from caalib.datasets import device_split_counts, read_dataset, summarize

    t20 = device_split_counts(read_dataset(tiny2020))
    assert list(t20.index) == list(ALL_DEVICES)
    assert t20.loc["s4", "evaluate"] == 10 and "train" in t20 and t20.loc["s4", "train"] == 0
    assert "S6 10" in summarize(read_dataset(tiny2020))
    assert list(device_split_counts(read_dataset(tiny_dataset_2018)).index) == ["a", "b", "c"]


# ---------------------------------------------------------------------- training on it
def test_training_never_sees_an_evaluate_only_device(tiny2020: Path, features2020: Path):
    from caalib.training import TrainConfig
    from caalib.training.data import load_run_data, source_counts

    for strategy, layer in (("joint", None), ("multi_task", 4)):
        cfg = TrainConfig.from_profile("tiny", dataset="dcase2020", strategy=strategy,
                                       cond_layer=layer, lambda_mode="clean")
        data = load_run_data(cfg, features2020, tiny2020)
        assert set(data.train.meta["source"]) == set(SEEN)
        if data.holdout is not None:
            assert set(data.holdout.meta["source"]) <= set(SEEN)
        assert set(data.evaluate.meta["source"]) == set(ALL_DEVICES)
        counts = source_counts(data.evaluate)
        assert all(counts[d] == 10 for d in ALL_DEVICES)
        assert int(data.train.source.max()) < len(SEEN)


def test_a_2020_run_reports_every_device(joint_run):
    from caalib import rundir

    run, metrics = joint_run
    acc = metrics["accuracy"]
    assert set(acc) == {*ALL_DEVICES, "avg"}
    assert acc["avg"] == pytest.approx(np.mean([acc[d] for d in ALL_DEVICES]))
    assert metrics["n_eval"] == {d: 10 for d in ALL_DEVICES}
    checked = rundir.read_metrics(run)
    pred = rundir.read_predictions(run, checked)
    assert set(pred["source"]) == set(ALL_DEVICES)
    hist = rundir.read_history(run)
    for dev in SIMULATED_DEVICES:
        assert f"acc_{dev}" in hist.columns
    assert rundir.read_config_dict(run)["dataset"] == "dcase2020"


def test_the_study_s_first_three_devices_keep_their_history_columns():
    from caalib import rundir

    assert rundir.history_columns(("a", "b", "c")) == rundir.HISTORY_COLUMNS
    cols = rundir.history_columns(ALL_DEVICES)
    assert cols.index("acc_s6") + 1 == cols.index("acc_avg")
    assert cols[-1] == "device_acc" and "device_recall_s4" in cols


# ---------------------------------------------------------------------- unseen policies
def test_conditioning_sources_by_hand():
    from caalib.training.unseen import conditioning_sources, nearest_source, source_centroids

    # two known devices with flat spectra at 0 and 10; an unseen clip at 8 is nearer 1
    x = np.zeros((5, 3, 2))
    x[1] += 10.0
    x[3] += 10.0
    x[4] += 8.0
    src = np.array([0, 1, 0, 1, 6])
    cents = source_centroids(x[:4], src[:4], 2)
    np.testing.assert_allclose(cents, [[0, 0], [10, 10]])
    assert nearest_source(x[4:], cents).tolist() == [1]
    idx, mask = conditioning_sources(src, 2, "nearest", x=x, centroids=cents)
    assert idx.tolist() == [0, 1, 0, 1, 1] and mask is None
    idx, mask = conditioning_sources(src, 2, "none")
    assert idx.tolist() == [0, 1, 0, 1, 0] and mask.tolist() == [False] * 4 + [True]
    known = src[:4]
    same, none = conditioning_sources(known, 2, "none")
    assert same is known and none is None


def test_unconditioned_rows_get_a_zero_one_hot():
    from caalib.models import build_model

    torch.manual_seed(0)
    model = build_model("pool", "max", "teacher_forcing", 2, n_sources=6, width=1 / 16,
                        n_frames=32, n_mels=64).eval()
    x = torch.randn(3, 32, 64)
    src = torch.tensor([1, 4, 0])
    mask = torch.tensor([False, True, False])
    onehot = torch.nn.functional.one_hot(src, 6).float()
    onehot[1] = 0.0  # the oracle: the float one-hot teacher forcing accepts, row zeroed
    with torch.no_grad():
        got = model(x, source=src, unconditioned=mask).scene
        want = model(x, source=onehot).scene
    torch.testing.assert_close(got, want)


def test_unseen_source_policy_changes_only_unseen_rows(tiny2020: Path, features2020: Path):
    from caalib.training import TrainConfig
    from caalib.training.data import load_run_data
    from caalib.training.engine import Engine

    base = TrainConfig.from_profile("tiny", dataset="dcase2020", strategy="teacher_forcing",
                                    cond_layer=1, accelerator="cpu")
    data = load_run_data(base, features2020, tiny2020)
    preds = {}
    for policy in ("nearest", "none"):
        eng = Engine(base.replace(unseen_source=policy), data, torch.device("cpu"))
        preds[policy] = eng.predict("evaluate")["scene"]
    unseen = np.isin(data.evaluate.meta["source"], UNSEEN)
    np.testing.assert_array_equal(preds["nearest"][~unseen], preds["none"][~unseen])
    assert not np.allclose(preds["nearest"][unseen], preds["none"][unseen])


# ---------------------------------------------------------------------- config
def test_new_fields_name_variants_and_default_off():
    from caalib import rundir
    from caalib.training import TrainConfig

    base = TrainConfig.from_profile("tiny")
    assert base.augment == "" and base.unseen_source == "nearest"
    assert base.run_name == "dcase2018-atrous-att-joint-tiny-s0"
    cfg = TrainConfig.from_profile("tiny", dataset="dcase2020", strategy="multi_task",
                                   cond_layer=4, unseen_source="none",
                                   augment="mixup+freq_mixstyle", mixstyle_p=0.5)
    assert cfg.augment == "freq_mixstyle+mixup"  # one spelling per set
    assert cfg.run_name.endswith("-s0-unseen_none-freq_mixstyle_p0.5-mixup")
    assert rundir.expected_run_name(cfg.to_dict()) == cfg.run_name
    # a config.json written before these fields existed reads as the defaults
    old = {k: v for k, v in base.to_dict().items()
           if k not in rundir.UNSEEN_AND_AUGMENT_DEFAULTS}
    assert TrainConfig.from_dict(old) == base
    assert rundir.run_identity(old) == rundir.run_identity(base.to_dict())
    assert rundir.expected_run_name(old) == base.run_name


@pytest.mark.parametrize("changes, field", [
    ({"unseen_source": "none"}, "unseen_source"),  # joint has no conditioning
    ({"augment": "specaugment"}, "augment"),
    ({"augment": "mixup+mixup"}, "augment"),
    ({"mixup_alpha": 0.2}, "mixup_alpha"),  # set while mixup is off
    ({"augment": "dir", "dir_p": 1.5}, "dir_p"),
    ({"augment": "freq_mixstyle", "mixstyle_alpha": 0.0}, "mixstyle_alpha"),
])
def test_bad_augment_or_policy_names_the_field(changes, field):
    from caalib.training import TrainConfig

    with pytest.raises(ConfigError, match=field):
        TrainConfig.from_profile("tiny", **changes)


def test_default_config_builds_no_augmenter():
    from caalib.training import TrainConfig
    from caalib.training.augment import build_augmenter

    assert build_augmenter(TrainConfig.from_profile("tiny"), np.ones(64), torch.device("cpu")) \
        is None


# ---------------------------------------------------------------------- augmentations
def _batch(seed: int = 0, b: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((b, 20, 64)) * rng.uniform(0.5, 2, (b, 1, 64))
            + rng.normal(0, 3, (b, 1, 64)))


def test_freq_mixstyle_mixes_per_frequency_statistics():
    from caalib.training.augment import MIXSTYLE_EPS, freq_mixstyle

    x = _batch()
    got = freq_mixstyle(torch.tensor(x), np.random.default_rng(5), p=1.0, alpha=0.3).numpy()
    # the oracle, by hand in numpy, with the same draws in the documented order
    rng = np.random.default_rng(5)
    rng.random()
    lam = rng.beta(0.3, 0.3, size=8)[:, None, None]
    perm = rng.permutation(8)
    mu = x.mean(axis=1, keepdims=True)
    sig = np.sqrt(x.var(axis=1, keepdims=True) + MIXSTYLE_EPS)
    want = (x - mu) / sig * (lam * sig + (1 - lam) * sig[perm]) + lam * mu + (1 - lam) * mu[perm]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # the stated property: each clip's per-bin mean over time is the mixed mean
    np.testing.assert_allclose(got.mean(axis=1), (lam * mu + (1 - lam) * mu[perm])[:, 0],
                               atol=1e-9)


def test_freq_mixstyle_applies_with_probability_p():
    from caalib.training.augment import augment_rng, freq_mixstyle

    x = torch.tensor(_batch(b=4))
    n = 600
    applied = sum(not torch.equal(freq_mixstyle(x, augment_rng(0, "freq_mixstyle", s), 0.4,
                                                0.3), x) for s in range(n))
    assert stats.binomtest(applied, n, 0.4).pvalue > 1e-3
    assert torch.equal(freq_mixstyle(x, np.random.default_rng(1), 0.0, 0.3), x)


def test_mixup_mixes_inputs_by_one_lambda():
    from caalib.training.augment import mixup

    x = _batch()
    got, mix = mixup(torch.tensor(x), np.random.default_rng(3), alpha=0.3)
    rng = np.random.default_rng(3)
    lam = rng.beta(0.3, 0.3)
    perm = rng.permutation(8)
    assert mix.lam == lam and mix.perm.tolist() == perm.tolist()
    np.testing.assert_allclose(got.numpy(), lam * x + (1 - lam) * x[perm])


def test_mixup_loss_is_the_lambda_blend_of_both_targets(tiny_dataset_2018, tiny_features_2018):
    from caalib.training import TrainConfig
    from caalib.training.augment import Mix
    from caalib.training.data import load_run_data
    from caalib.training.engine import Engine

    cfg = TrainConfig.from_profile("tiny", accelerator="cpu", augment="mixup")
    data = load_run_data(cfg, tiny_features_2018, tiny_dataset_2018)
    x, y, d = (torch.tensor(a[:4]) for a in (data.train.x, data.train.scene, data.train.source))
    eng = Engine(cfg, data, torch.device("cpu"))
    eng.model.eval()  # no BatchNorm statistics: the oracle forward sees the same model
    with torch.no_grad():
        logp = eng.model(x).scene
    perm = torch.tensor([1, 0, 3, 2])
    want = (0.3 * -logp[torch.arange(4), y].mean()
            + 0.7 * -logp[torch.arange(4), y[perm]].mean())
    got = eng.update(x, y, d, 1.0, mix=Mix(perm, 0.3))[1]
    torch.testing.assert_close(got, want)


def test_dir_changes_only_device_a_rows_by_a_bank_response():
    from caalib.constants import DEVICE_INDEX
    from caalib.training.augment import apply_dir

    x = torch.tensor(_batch(b=6))
    offsets = torch.tensor(np.random.default_rng(0).normal(size=(5, 64)))
    src = torch.tensor([DEVICE_INDEX[d] for d in ("a", "a", "b", "a", "s1", "a")])
    got = apply_dir(x, src, offsets, np.random.default_rng(2), p=1.0)
    delta = (got - x).numpy()
    for i, dev in enumerate(("a", "a", "b", "a", "s1", "a")):
        if dev != "a":
            assert np.all(delta[i] == 0)
        else:  # the same offset on every frame, and one of the bank's rows
            assert np.allclose(delta[i], delta[i][0])
            assert np.isclose(np.abs(offsets.numpy() - delta[i][0]).max(axis=1), 0).any()
    n, hits = 400, 0
    for s in range(n):
        out = apply_dir(x, src, offsets, np.random.default_rng([9, s]), p=0.6)
        hits += int((out - x)[[0, 1, 3, 5]].abs().amax(dim=(1, 2)).gt(0).sum())
    assert stats.binomtest(hits, 4 * n, 0.6).pvalue > 1e-3


def test_dir_log_gains_match_filtering_the_waveform():
    """The log-mel offset of a bank response equals what filtering the audio does to the
    reference log-mel (scipy's sosfilt through the study's reference recipe)."""
    from caalib.features.recipe import reference_logmel
    from caalib.synth.devices import impulse_response_bank, phone_sos
    from caalib.training.augment import dir_log_gains

    gains = dir_log_gains(n=2)
    x = np.random.default_rng(0).standard_normal(44_100 * 2)
    ref = reference_logmel(x, 44_100)
    for k, phone in enumerate(impulse_response_bank(2)):
        y = signal.sosfilt(phone_sos(phone, 44_100), x)
        delta = (reference_logmel(y, 44_100) - ref)[5:].mean(axis=0)  # past the transient
        audible = gains[k] > np.log(10 ** (-30 / 20))  # bands within 30 dB of the peak
        err = np.abs(delta - gains[k])[audible]
        assert np.median(err) < 0.05 and err.max() < 0.35


def test_augmented_training_is_deterministic_and_differs(tiny_dataset_2018, tiny_features_2018,
                                                         tmp_path: Path):
    from caalib.training import TrainConfig, train

    base = dict(accelerator="cpu", iterations=6, eval_every=6, checkpoint_every=6)
    plain = TrainConfig.from_profile("tiny", **base)
    aug = plain.replace(augment="dir+freq_mixstyle+mixup", mixstyle_p=1.0)
    runs = {}
    for name, cfg in (("plain", plain), ("aug1", aug), ("aug2", aug)):
        train(cfg, tmp_path / name, data_dir=tiny_dataset_2018, progress=False)
        runs[name] = pd.read_csv(tmp_path / name / "history.csv")["loss"].to_numpy()
    np.testing.assert_array_equal(runs["aug1"], runs["aug2"])
    assert not np.array_equal(runs["plain"], runs["aug1"])


def test_a_checkpoint_from_before_the_new_fields_resumes_and_others_are_refused():
    """A checkpoint written before ``unseen_source`` and ``augment`` existed lacks them and
    ran with their defaults: it resumes; one of another augmentation is refused."""
    from caalib import rundir
    from caalib.training import TrainConfig
    from caalib.training.engine import Engine
    from caalib.training.numerics import synthetic_data

    cfg = TrainConfig.from_profile("tiny", topology="pool", pooling="att", strategy="joint",
                                   accelerator="cpu")
    data = synthetic_data(n=16, frames=16, mels=64, batch=4, steps=1).run_data()
    state = Engine(cfg, data, torch.device("cpu")).state()
    for key in rundir.UNSEEN_AND_AUGMENT_DEFAULTS:
        state["config"].pop(key, None)
    Engine(cfg, data, torch.device("cpu")).restore(state, Path("old.pt"))
    mixed = cfg.replace(augment="mixup")
    with pytest.raises(ConfigError, match="augment"):
        Engine(mixed, data, torch.device("cpu")).restore(state, Path("old.pt"))


def test_single_device_run_on_a_simulated_training_device(tiny2020: Path, features2020: Path,
                                                          tmp_path: Path):
    """S1-S3 have training clips on the 2020 layout, so a single-device run may train on
    one: it trains and is scored on that device only, and its run directory reads back;
    an evaluate-only device (S4) or a 2018 run on S1 is refused, naming the field."""
    import pandas as pd

    from caalib.cli import main
    from caalib.results.runs import load_runs
    from caalib.rundir import read_predictions
    from caalib.training import TrainConfig

    results = tmp_path / "results"
    cfg = TrainConfig.from_profile("tiny", dataset="dcase2020", topology="pool",
                                   pooling="att", strategy="single", train_source="s1",
                                   accelerator="cpu")
    assert cfg.run_name.startswith("dcase2020-pool-att-single-s1-tiny")
    run = results / "runs" / cfg.run_name
    assert main(["train", "--data", str(tiny2020), "--topology", "pool", "--pooling", "att",
                 "--strategy", "single", "--source", "s1", "--profile", "tiny",
                 "--accelerator", "cpu", "--out", str(run), "--no-progress"]) == 0
    preds = read_predictions(run)
    meta = pd.read_csv(tiny2020 / "evaluation_setup" / "fold1_evaluate.csv", sep="\t")
    s1_clips = {f for f in meta["filename"] if f.endswith("-s1.wav")}
    assert set(preds["source"]) == {"s1"} and set(preds["filename"]) == s1_clips
    runs = load_runs(results)
    assert list(runs["train_source"]) == ["s1"] and runs["acc_s1"].notna().all()
    with pytest.raises(ConfigError, match="train_source"):
        TrainConfig.from_profile("tiny", dataset="dcase2020", strategy="single",
                                 train_source="s4", accelerator="cpu")
    with pytest.raises(ConfigError, match="train_source"):
        TrainConfig.from_profile("tiny", dataset="dcase2018", strategy="single",
                                 train_source="s1", accelerator="cpu")
