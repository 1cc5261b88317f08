"""caalib.metrics against scikit-learn as an independent oracle, plus one case by hand.

The DCASE Task 1B metric: per device, the unweighted mean of the class-wise accuracies
(recall per true class) over the classes present on that device -- scikit-learn's
``balanced_accuracy_score``; "avg" is the mean over the devices present. The released
λ statistic (:func:`caalib.metrics.device_recall`) is a device classifier's recall per
true device; its mean is scikit-learn's macro recall over the devices present.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import metrics_by_counting

from caalib.constants import DEVICES, SCENES
from caalib.metrics import (
    classwise_accuracy,
    confusion_matrix,
    device_metrics,
    device_recall,
    macro_accuracy,
)

skm = pytest.importorskip("sklearn.metrics")

N = len(SCENES)
LABELS = list(range(N))


def _recall(y_true, y_pred, labels) -> np.ndarray:
    """Recall per label, NaN for a label with no true clip."""
    return skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)


def _balanced(y_true, y_pred) -> float:
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": dropped, as ours
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(y_true, y_pred))


def _random_case(seed: int, n: int, p_right: float = 0.6):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N, n)
    pred = np.where(rng.random(n) < p_right, y, rng.integers(0, N, n))
    dev = rng.choice(list(DEVICES), n, p=[0.8, 0.1, 0.1])  # imbalanced, like the eval split
    return y, pred, dev


# ---------------------------------------------------------------- by hand
def test_hand_computed_case() -> None:
    # Three scenes x, y, z (indices 0, 1, 2) on devices a and b; device c has no clip.
    # a: true 0 0 1 1 2, predicted 0 1 1 1 0 -> x 1/2, y 2/2, z 0/1 -> (0.5 + 1 + 0) / 3 = 0.5
    #    (the clip-weighted accuracy would be 3/5 = 0.6)
    # b: true 0 2 2 2, predicted 0 2 2 1 -> x 1/1, y no clip, z 2/3 -> (1 + 2/3) / 2 = 5/6
    # avg over the devices present = (0.5 + 5/6) / 2 = 2/3
    y_true = [0, 0, 1, 1, 2, 0, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 0, 0, 2, 2, 1]
    devices = ["a"] * 5 + ["b"] * 4
    m = device_metrics(y_true, y_pred, devices, scenes=("x", "y", "z"))
    assert m["accuracy"] == pytest.approx({"a": 0.5, "b": 5 / 6, "avg": 2 / 3})
    assert m["classwise"] == {"a": {"x": 0.5, "y": 1.0, "z": 0.0},
                              "b": {"x": 1.0, "y": None, "z": pytest.approx(2 / 3)}}
    assert m["confusion"] == {"a": [[1, 1, 0], [0, 2, 0], [1, 0, 0]],
                              "b": [[1, 0, 0], [0, 0, 0], [0, 1, 2]]}
    assert m["n_eval"] == {"a": 5, "b": 4}
    assert macro_accuracy(y_true[:5], y_pred[:5], 3) == pytest.approx(0.5)
    # Pooling the devices is a different number: x 2/3, y 2/2, z 2/4 -> 13/18, not 2/3.
    assert macro_accuracy(y_true, y_pred, 3) == pytest.approx(13 / 18)
    # A device classifier: true a a a b c, predicted a a b b a -> recall a 2/3, b 1, c 0.
    assert device_recall([0, 0, 0, 1, 2], [0, 0, 1, 1, 0]) == pytest.approx(
        {"a": 2 / 3, "b": 1.0, "c": 0.0})


# ---------------------------------------------------------------- against scikit-learn
@pytest.mark.parametrize("seed, n", [(0, 1), (1, 7), (2, 50), (3, 500), (4, 3000)])
def test_clip_level_functions_match_sklearn(seed: int, n: int) -> None:
    y, pred, _ = _random_case(seed, n)
    np.testing.assert_array_equal(confusion_matrix(y, pred, N),
                                  skm.confusion_matrix(y, pred, labels=LABELS))
    np.testing.assert_allclose(classwise_accuracy(y, pred, N), _recall(y, pred, LABELS),
                               equal_nan=True)
    assert macro_accuracy(y, pred, N) == pytest.approx(_balanced(y, pred))
    present = np.unique(y)
    assert macro_accuracy(y, pred, N) == pytest.approx(
        skm.recall_score(y, pred, labels=present, average="macro"))


@pytest.mark.parametrize("seed, n", [(10, 30), (11, 300), (12, 2878)])
def test_device_metrics_match_sklearn_per_device(seed: int, n: int) -> None:
    y, pred, dev = _random_case(seed, n)
    m = device_metrics(y, pred, dev)
    assert sorted(m["n_eval"]) == sorted(set(dev))
    for d in m["n_eval"]:
        on = dev == d
        assert m["n_eval"][d] == on.sum()
        assert m["accuracy"][d] == pytest.approx(_balanced(y[on], pred[on]))
        np.testing.assert_array_equal(m["confusion"][d],
                                      skm.confusion_matrix(y[on], pred[on], labels=LABELS))
        want = _recall(y[on], pred[on], LABELS)
        got = np.array([np.nan if v is None else v for v in m["classwise"][d].values()])
        assert list(m["classwise"][d]) == list(SCENES)
        np.testing.assert_allclose(got, want, equal_nan=True)
    devs = [d for d in DEVICES if d in m["n_eval"]]
    assert m["accuracy"]["avg"] == pytest.approx(
        np.mean([_balanced(y[dev == d], pred[dev == d]) for d in devs]))
    # Not the clip-weighted accuracy, not the balanced accuracy of the pooled clips.
    assert m["accuracy"]["avg"] != pytest.approx(skm.accuracy_score(y, pred), abs=1e-4)


def test_inputs_as_pandas_series() -> None:
    y, pred, dev = _random_case(5, 200)
    idx = np.arange(1000, 1200)  # a filtered frame keeps its index
    frame = pd.DataFrame({"y": y, "p": pred, "d": dev}, index=idx)
    assert device_metrics(frame["y"], frame["p"], frame["d"]) == device_metrics(y, pred, dev)


# ---------------------------------------------------------------- edge cases
def test_class_absent_from_truth_is_left_out_not_zero() -> None:
    # Class 3 is predicted but never true; class 9 is neither: both are left out of the mean.
    y = np.array([0, 0, 1, 2, 2, 2])
    pred = np.array([0, 3, 1, 2, 3, 2])
    cw = classwise_accuracy(y, pred, N)
    assert np.isnan(cw[3]) and np.isnan(cw[9])
    np.testing.assert_allclose(cw, _recall(y, pred, LABELS), equal_nan=True)
    assert macro_accuracy(y, pred, N) == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert macro_accuracy(y, pred, N) == pytest.approx(_balanced(y, pred))
    # scikit-learn's plain macro recall over every label counts the absent classes as 0.
    assert skm.recall_score(y, pred, labels=LABELS, average="macro",
                            zero_division=0) < macro_accuracy(y, pred, N)
    m = device_metrics(y, pred, ["b"] * len(y))
    assert m["classwise"]["b"][SCENES[3]] is None and m["classwise"]["b"][SCENES[9]] is None
    assert m["accuracy"] == pytest.approx({"b": _balanced(y, pred), "avg": _balanced(y, pred)})


def test_device_without_clips_is_absent_and_left_out_of_avg() -> None:
    y, pred, _ = _random_case(6, 120)
    dev = np.where(np.arange(120) % 2 == 0, "a", "c")  # no device b clip
    m = device_metrics(y, pred, dev)
    for field in ("accuracy", "classwise", "confusion", "n_eval"):
        assert "b" not in m[field]
    a, c = _balanced(y[dev == "a"], pred[dev == "a"]), _balanced(y[dev == "c"], pred[dev == "c"])
    assert m["accuracy"]["avg"] == pytest.approx((a + c) / 2)
    assert m["n_eval"] == {"a": 60, "c": 60}


def test_one_clip_and_no_clip() -> None:
    assert macro_accuracy([4], [4], N) == 1.0 == _balanced([4], [4])
    assert macro_accuracy([4], [5], N) == 0.0 == _balanced([4], [5])
    one = device_metrics([4], [5], ["c"])
    assert one["accuracy"] == {"c": 0.0, "avg": 0.0} and one["n_eval"] == {"c": 1}
    assert [s for s, a in one["classwise"]["c"].items() if a is not None] == [SCENES[4]]
    assert np.asarray(one["confusion"]["c"]).sum() == 1 and one["confusion"]["c"][4][5] == 1
    assert np.isnan(macro_accuracy([], [], N))
    assert np.isnan(classwise_accuracy([], [], N)).all()
    assert confusion_matrix([], [], N).sum() == 0
    assert device_metrics([], [], []) == {"accuracy": {}, "classwise": {}, "confusion": {},
                                          "n_eval": {}}


# ---------------------------------------------------------------- the λ statistic
@pytest.mark.parametrize("seed, p", [(20, [0.8, 0.1, 0.1]), (21, [0.5, 0.5, 0.0])])
def test_device_recall_is_sklearn_recall_per_device(seed: int, p: list[float]) -> None:
    rng = np.random.default_rng(seed)
    true = rng.choice(3, 400, p=p)
    pred = np.where(rng.random(400) < 0.7, true, rng.integers(0, 3, 400))
    got = device_recall(true, pred)
    assert list(got) == list(DEVICES)
    np.testing.assert_allclose(list(got.values()), _recall(true, pred, [0, 1, 2]),
                               equal_nan=True)
    present = np.unique(true)
    mean = np.nanmean(list(got.values()))
    assert mean == pytest.approx(skm.recall_score(true, pred, labels=present, average="macro"))
    assert mean == pytest.approx(_balanced(true, pred))
    if p[2] == 0.0:
        # No true device-C clip: NaN, left out of the mean -- whereas scikit-learn's
        # unlabelled macro recall counts the predicted-only device C as recall 0.
        assert np.isnan(got["c"]) and (pred == 2).any()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert skm.recall_score(true, pred, average="macro", zero_division=0) < mean
    else:
        # Imbalanced devices: the macro mean, not the clip-weighted device accuracy.
        assert mean != pytest.approx(skm.accuracy_score(true, pred), abs=1e-3)


# ---------------------------------------------------------------- the fixtures' own oracle
def test_fixture_metrics_writer_matches_sklearn() -> None:
    """helpers.metrics_by_counting writes the metrics.json of crafted runs; tables tests
    trust it, so it is checked here against scikit-learn (not against caalib.metrics)."""
    y, pred, dev = _random_case(30, 400)
    dev[dev == "b"] = "a"  # one device absent
    frame = pd.DataFrame({"source": dev, "scene_label": np.array(SCENES)[y],
                          "predicted": np.array(SCENES)[pred]})
    m = metrics_by_counting(frame)
    assert sorted(m["accuracy"]) == ["a", "avg", "c"]
    for d in ("a", "c"):
        on = dev == d
        assert m["accuracy"][d] == pytest.approx(_balanced(y[on], pred[on]))
        np.testing.assert_array_equal(m["confusion"][d],
                                      skm.confusion_matrix(y[on], pred[on], labels=LABELS))
        assert m["n_eval"][d] == on.sum()
