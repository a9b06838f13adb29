"""Mating-success training: grouped folds, a tiny CGANet run, determinism, baselines and the encounter roll-up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.mating_training import (
    METRICS,
    MatingTrainSettings,
    calibrate,
    cross_validate_cganet,
    data_fingerprint,
    encounter_call,
    encounter_metrics,
    encounter_probability,
    evaluate_mating,
    fit_temperature,
    flda_baseline,
    fold_groups,
    format_percent,
    grouped_folds,
    make_optimiser,
    make_plateau,
    mating_model_card,
    mating_model_from_state,
    metrics_table,
    predict_frame_probs,
    rollup_encounters,
    svm_baseline,
    train_cganet,
    validation_split,
)

TINY = MatingTrainSettings(epochs=6, batch_size=16, filters=8, hidden=8, folds=3)


def mfcc_like(labels: np.ndarray, seed: int) -> np.ndarray:
    """MFCC-shaped windows: c0 in the hundreds, others tens; success shifts coefficients 1-4 up, failure down."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 10.0, size=(len(labels), 2, 86, 40)).astype(np.float32)
    x[..., 0] += -300.0
    x[..., 1:5] += np.where(labels == 1, 8.0, -8.0)[:, None, None, None]
    return x


def paired_data(n_pairs: int, per_pair: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Windows of n_pairs encounters (one per pair), half of them successful: x, y, pair ids, encounter ids."""
    pair_label = np.arange(n_pairs) % 2
    y = np.repeat(pair_label, per_pair)
    pairs = [f"M{i}|F{i}" for i in range(n_pairs) for _ in range(per_pair)]
    encounters = [f"E{i:02d}" for i in range(n_pairs) for _ in range(per_pair)]
    return mfcc_like(y, seed), y, pairs, encounters


# ---------------------------------------------------------------- folds


def test_folds_never_share_a_group_and_are_stratified() -> None:
    rng = np.random.default_rng(1)
    sizes = rng.integers(2, 7, size=20)
    groups = [f"M{i}|F{i}" for i, n in enumerate(sizes) for _ in range(n)]
    labels = [i % 2 for i, n in enumerate(sizes) for _ in range(n)]
    plan = grouped_folds(groups, labels, k=5, seed=0)
    assert (plan.k, len(plan), plan.method, plan.note) == (5, 5, "StratifiedGroupKFold", "")
    g, y = np.asarray(groups), np.asarray(labels)
    for train, test in plan:
        assert not set(g[train]) & set(g[test])
        assert set(y[test].tolist()) == {0, 1}
    assert sorted(np.concatenate([test for _, test in plan]).tolist()) == list(range(len(groups)))
    assert [t.tolist() for _, t in grouped_folds(groups, labels, 5, 0)] == [t.tolist() for _, t in plan]


def test_fewer_groups_than_k_reduces_k_and_says_so() -> None:
    plan = grouped_folds(["a", "a", "b", "c", "c"], [1, 1, 0, 1, 1], k=5, seed=0)
    assert plan.k == 3 and plan.k_requested == 5 and len(plan) == 3
    assert "only 3 groups, so 3 folds were used instead of 5" in plan.note
    assert sorted(len(set(np.array(["a", "a", "b", "c", "c"])[test])) for _, test in plan) == [1, 1, 1]
    with pytest.raises(ValueError, match="at least 2 groups"):
        grouped_folds(["a", "a"], [0, 1], k=5, seed=0)


def test_one_class_only_falls_back_to_group_kfold() -> None:
    plan = grouped_folds(list("aabbccdd"), [1] * 8, k=2, seed=0)
    assert plan.method == "GroupKFold" and len(plan) == 2 and "not stratified" in plan.note


def test_a_label_with_a_single_group_skips_the_fold_that_tests_it() -> None:
    x, _, pairs, _ = paired_data(n_pairs=5, per_pair=3)
    y = np.array([0 if pair == "M1|F1" else 1 for pair in pairs])  # pair 1 holds the only failures
    plan = grouped_folds(pairs, y.tolist(), k=5, seed=0)
    assert "training parts hold one label only" in plan.note
    result = svm_baseline(x, y, plan)
    assert len(result["folds"]["skipped"]) == 1 and len(result["segment"]["per_fold"]) == 4
    assert result["segment"]["pooled"]["n"] == 12


def test_fold_groups_by_pair_encounter_or_none() -> None:
    pairs, encounters = ["M1|F1", "M1|F1", "M2|F2"], ["E1", "E2", "E3"]
    assert fold_groups("pair", pairs, encounters) == pairs
    assert fold_groups("encounter", pairs, encounters) == encounters
    assert len(set(fold_groups("none", pairs, encounters))) == 3


def test_validation_split_is_grouped_and_keeps_both_labels_for_fitting() -> None:
    groups = [g for g in "abcdefgh" for _ in range(3)]
    labels = [int(g in "aceg") for g in groups]
    fit, val = validation_split(groups, labels, 0.25, seed=0)
    g, y = np.asarray(groups), np.asarray(labels)
    assert len(val) and not set(g[fit]) & set(g[val]) and set(y[fit].tolist()) == {0, 1}
    fit, val = validation_split(["a", "a", "b"], [1, 1, 0], 0.5, seed=0)  # holding out either group loses a label
    assert len(val) == 0 and len(fit) == 3
    fit, val = validation_split(list("abcde"), [1, 1, 1, 1, 0], 0.2, seed=0)  # no hold-out holds both outcomes
    assert len(val) == 0 and len(fit) == 5


# ---------------------------------------------------------------- training


def test_tiny_training_beats_chance_and_keeps_the_best_validation_epoch(one_thread) -> None:
    y_train, y_val = np.arange(48) % 2, np.arange(24) % 2
    x_train, x_val = mfcc_like(y_train, seed=1), mfcc_like(y_val, seed=2)
    state, history = train_cganet(x_train, y_train, x_val, y_val, TINY, seed=0)
    assert len(history.epochs) == TINY.epochs and 1 <= history.best_epoch <= TINY.epochs
    best = history.epochs[history.best_epoch - 1]
    assert best.val_accuracy == max(e.val_accuracy for e in history.epochs)
    assert best.val_accuracy >= 0.8 and 0.01 <= history.temperature <= 100
    card = mating_model_card(TINY, 0, data_fingerprint(x_train, y_train, ["E"] * 48), {"train": ["E"]}, history, {})
    assert card["training"]["best_epoch"] == history.best_epoch and card["settings"]["filters"] == 8
    model = mating_model_from_state(state)
    predicted = predict_frame_probs(model, x_val).sum(axis=1).argmin(axis=1)  # column 0 is success
    assert float(np.mean(predicted == y_val)) == pytest.approx(best.val_accuracy)
    assert torch.allclose(state["input_mean"][0], torch.tensor(-300.0), atol=1.0)  # statistics of x_train travel along


def test_training_is_deterministic_for_a_seed_and_leaves_the_global_rng_alone(one_thread) -> None:
    y = np.arange(20) % 2
    x = mfcc_like(y, seed=3)
    settings = MatingTrainSettings(epochs=2, batch_size=8, filters=4, hidden=4)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first, _ = train_cganet(x, y, x[:6], y[:6], settings, seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    second, _ = train_cganet(x, y, x[:6], y[:6], settings, seed=5)
    other, _ = train_cganet(x, y, x[:6], y[:6], settings, seed=6)
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["net.classifier.weight"], other["net.classifier.weight"])


def test_early_stop_and_training_without_validation(one_thread) -> None:
    y = np.arange(12) % 2
    x = mfcc_like(y, seed=4)
    settings = MatingTrainSettings(epochs=30, batch_size=6, filters=4, hidden=4, max_epochs_without_improvement=2)
    _, history = train_cganet(x, y, x[:4], 1 - y[:4], settings, seed=0)  # validation labels flipped: it only worsens
    assert history.stopped_early and len(history.epochs) == history.best_epoch + 2 < 30
    plain = MatingTrainSettings(epochs=2, batch_size=6, filters=4, hidden=4, standardise=False)
    state, history = train_cganet(x, y, x[:0], y[:0], plain, seed=0)
    assert history.best_epoch == 2 and history.epochs[-1].val_accuracy is None
    assert torch.equal(state["input_std"], torch.ones(40))
    with pytest.raises(ValueError, match="both present"):
        train_cganet(x, np.ones(12, int), x[:0], y[:0], plain, seed=0)


def test_seed_defaults_and_the_plateau_schedule() -> None:
    seed = MatingTrainSettings()
    assert (
        seed.lr,
        seed.lr_factor,
        seed.plateau_patience,
        seed.epochs,
        seed.batch_size,
        seed.dropout,
        seed.folds,
        seed.group_by,
        seed.max_epochs_without_improvement,
    ) == (0.01, 0.1, 125, 500, 32, 0.3, 5, "pair", None)
    settings = MatingTrainSettings(plateau_patience=3)
    optimiser = make_optimiser(torch.nn.Linear(1, 1), settings)
    plateau, rates = make_plateau(optimiser, settings), []
    for accuracy in (0.5, 0.6, 0.6, 0.6, 0.6, 0.7):
        plateau.step(accuracy)
        rates.append(optimiser.param_groups[0]["lr"])
    assert rates == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001, 0.001])  # cut on the 3rd epoch without a rise


def test_cross_validation_reports_segment_and_encounter_metrics(one_thread) -> None:
    x, y, pairs, encounters = paired_data(n_pairs=6, per_pair=4)
    settings = MatingTrainSettings(epochs=2, batch_size=8, filters=4, hidden=4, folds=3)
    result = cross_validate_cganet(x, y, pairs, settings, seed=0, encounter_ids=encounters)
    assert result["folds"]["k"] == 3 and len(result["best_epochs"]) == 3
    for level in ("segment", "encounter"):
        report = result[level]
        assert set(report["mean"]) == set(METRICS) == set(report["std"])
        assert len(report["per_fold"]) == 3 and report["pooled"]["n"] == (24 if level == "segment" else 6)


# ---------------------------------------------------------------- baselines


def test_baselines_run_on_the_same_folds_and_return_the_metrics() -> None:
    x, y, pairs, _ = paired_data(n_pairs=10, per_pair=3)
    plan = grouped_folds(pairs, y.tolist(), k=5, seed=0)
    for features in ("flat", "summary"):
        for result in (svm_baseline(x, y, plan, features), flda_baseline(x, y, plan, features)):
            assert result["folds"]["test_indices"] == [test.tolist() for _, test in plan]
            assert set(result["segment"]["mean"]) == set(METRICS)
            assert result["segment"]["mean"]["accuracy"] > 0.8  # the classes are separable
            assert all(set(METRICS) <= set(fold) for fold in result["segment"]["per_fold"])
    encounters = [f"E{p}" for p in pairs]
    for result in (
        svm_baseline(x, y, plan, "summary", encounter_ids=encounters),
        flda_baseline(x, y, plan, "summary", encounter_ids=encounters),
    ):
        assert result["encounter"]["pooled"]["n"] == 10 and result["encounter"]["mean"]["accuracy"] > 0.8


def test_data_fingerprint_ignores_order_and_sees_labels() -> None:
    x, y, _, encounters = paired_data(n_pairs=2, per_pair=2)
    order = [3, 1, 0, 2]
    assert data_fingerprint(x, y, encounters) == data_fingerprint(x[order], y[order], [encounters[i] for i in order])
    assert data_fingerprint(x, y, encounters) != data_fingerprint(x, 1 - y, encounters)


def test_evaluate_mating_and_its_table(one_thread) -> None:
    x, y, pairs, encounters = paired_data(n_pairs=6, per_pair=3)
    settings = MatingTrainSettings(epochs=1, batch_size=8, filters=4, hidden=4, folds=3)
    results = evaluate_mating(x, y, pairs, settings, seed=0, encounter_ids=encounters)
    assert set(results) == {"folds", "cganet", "svm", "flda"}
    assert results["cganet"]["folds"] == results["svm"]["folds"] == results["flda"]["folds"]
    table = metrics_table(results)
    assert table.splitlines()[0].split() == ["model", *METRICS] and len(table.splitlines()) == 4
    assert "±" in table
    assert format_percent(0.899, 0.091) == "89.9% ± 9.1%" and format_percent(None, None) == "n/a"
    assert format_percent(0.7, 0.1, n_folds=2, k=5) == "70.0% ± 10.0% [2/5]"  # AUC defined on 2 of 5 folds


# ---------------------------------------------------------------- encounter roll-up


def test_encounter_probability_sums_frames_over_all_segments() -> None:
    confident = np.tile([0.9, 0.1], (86, 1))  # P_s 77.4, P_f 8.6
    doubtful = np.tile([0.2, 0.8], (86, 1))  # P_s 17.2, P_f 68.8
    mixed = np.vstack([np.tile([1.0, 0.0], (43, 1)), np.tile([0.0, 1.0], (43, 1))])  # P_s 43, P_f 43
    assert encounter_probability([confident]) == pytest.approx(0.9)
    assert encounter_probability([confident, doubtful]) == pytest.approx(94.6 / 172.0)  # 0.55
    assert encounter_probability([confident, doubtful, mixed]) == pytest.approx(137.6 / 258.0)
    with pytest.raises(ValueError, match="without segments"):
        encounter_probability([])


def test_encounter_call_band_and_the_seed_rule() -> None:
    assert [encounter_call(p) for p in (0.61, 0.6, 0.55, 0.41, 0.4, 0.1)] == [
        "success",
        "unknown",
        "unknown",
        "unknown",
        "failure",
        "failure",
    ]
    assert encounter_call(None) == "unknown" and encounter_call(float("nan")) == "unknown"
    assert encounter_call(0.5001, 0.5, 0.5) == "success" and encounter_call(0.5, 0.5, 0.5) == "failure"
    with pytest.raises(ValueError, match="abstain_low"):
        encounter_call(0.5, 0.7, 0.3)


def test_temperature_spreads_underconfident_probabilities_without_moving_the_calls() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    p = np.where(labels == 1, 0.55, 0.45)  # ranks perfectly but hugs 0.5, as a briefly trained CGANet does
    p[[6, 7]] = [0.45, 0.55]  # two mistakes keep the optimum finite
    temperature = fit_temperature(p, labels)
    assert temperature < 0.2
    assert calibrate(0.5, temperature) == pytest.approx(0.5)
    assert calibrate(0.55, temperature) > 0.6 and calibrate(0.45, temperature) < 0.4
    assert np.array_equal(calibrate(p, temperature) > 0.5, p > 0.5)
    assert fit_temperature(p, np.ones(8, int)) == 1.0  # one label: nothing to fit
    probs = np.stack([np.tile(row, (86, 1)) for row in ([0.55, 0.45], [0.45, 0.55])])
    metrics = encounter_metrics(["E1", "E2"], probs, [1, 0], temperature)
    assert (metrics["n_unknown_raw"], metrics["n_unknown"], metrics["accuracy"]) == (2, 0, 1.0)


def test_rollup_encounters_counts_segments_and_calls() -> None:
    probs = np.stack([np.tile(row, (86, 1)) for row in ([0.9, 0.1], [0.2, 0.8], [0.3, 0.7])])
    rows = rollup_encounters(["E2", "E2", "E1"], probs)
    assert [(r.encounter_id, r.n_segments, r.predicted) for r in rows] == [("E1", 1, "failure"), ("E2", 2, "unknown")]
    assert rows[1].p_success == pytest.approx(0.55)


def test_encounter_metrics_give_the_rates_of_the_decided_encounters() -> None:
    """Sensitivity and specificity count only the encounters the 0.4-0.6 band decided, with how many of each."""
    from models.mating_training import decided_rates, encounter_metrics

    # one window per encounter; frame probabilities of success 0.9 (called success), 0.1 (failure), 0.5 (unknown)
    p = np.array([0.9, 0.9, 0.1, 0.5, 0.1, 0.9])
    labels = [1, 1, 1, 1, 0, 0]
    frame_probs = np.stack([np.stack([np.full(86, q), np.full(86, 1 - q)], axis=1) for q in p])
    rates = encounter_metrics([f"e{i}" for i in range(6)], frame_probs, labels)["rates"]
    assert rates == {"sensitivity": 2 / 3, "specificity": 0.5, "decided_successes": 3, "decided_failures": 2}
    assert decided_rates([], []) == {
        "sensitivity": None,
        "specificity": None,
        "decided_successes": 0,
        "decided_failures": 0,
    }
