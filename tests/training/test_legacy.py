"""The former system's files: model pickles checked one by one, the wrapper, the CSV styles.

The pickles are real scikit-learn estimators fitted here and saved with joblib or pickle. A
pickle made by scikit-learn 1.0.2 cannot be produced here (that version does not install on
this Python), so the two version paths are made honestly by other means: the
``_sklearn_version`` recorded in a real pickle's state is set to "1.0.2" (the mismatch that
makes the current scikit-learn warn with InconsistentVersionWarning, as a real 1.0.2 pickle
does), and a pickle naming a module path older scikit-learn had and this one lacks
(``sklearn.neural_network.multilayer_perceptron``) stands for one that cannot load at all.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lof import legacy
from lof.cli import app
from lof.core.config import get_settings
from lof.core.errors import DataError, ModelError
from lof.features.definitions import FEATURES
from lof.registry import client as registry
from lof.training.examples import read_legacy_dataset


def former_frame(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Former-style inputs (N_ columns, 0-1) and a level 1-5 that depends on them."""
    rng = np.random.default_rng(seed)
    values = rng.random((n, len(legacy.FORMER_COLUMNS)))
    level = np.clip(np.round(1 + 4 * values[:, [9, 12]].mean(axis=1)), 1, 5)
    level[:5] = [1, 2, 3, 4, 5]
    return pd.DataFrame(values, columns=list(legacy.FORMER_COLUMNS)), level.astype(float)


def fitted_mlp(seed: int = 0):
    from sklearn.neural_network import MLPClassifier

    inputs, level = former_frame(seed=seed)
    return MLPClassifier(hidden_layer_sizes=(100,), max_iter=300, random_state=seed).fit(
        inputs, level
    ), inputs


def _pickle_claiming(model, version: str, *, protocol: int = 4) -> bytes:
    """A real pickle of ``model`` whose estimators all record scikit-learn ``version``."""
    from sklearn.base import BaseEstimator

    class Claiming(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, BaseEstimator):
                state = obj.__getstate__()
                state["_sklearn_version"] = version
                return copyreg.__newobj__, (type(obj),), state
            return NotImplemented

    buffer = io.BytesIO()
    Claiming(buffer, protocol=protocol).dump(model)
    return buffer.getvalue()


# --- the wrapper -------------------------------------------------------------------------------


def test_former_order_maps_each_former_column_to_its_lof_feature():
    assert legacy.FORMER_ORDER[0] == "specific_activity_view"
    assert legacy.FORMER_ORDER[1] == "activity_count_per_class"
    assert legacy.FORMER_ORDER[9] == "act_quiz_view"
    assert legacy.FORMER_ORDER[4] == "class_view_count"
    assert sorted(legacy.FORMER_ORDER) == sorted(FEATURES)


@pytest.mark.parametrize("fitted_on", ["frame", "array"])
def test_wrapper_feeds_lof_features_in_the_former_order(fitted_on):
    from sklearn.neural_network import MLPClassifier

    inputs, level = former_frame()
    train = inputs if fitted_on == "frame" else inputs.to_numpy()
    mlp = MLPClassifier(hidden_layer_sizes=(20,), max_iter=200, random_state=0).fit(train, level)
    wrapped = legacy.LegacyModel(mlp)
    by_lof_name = inputs.rename(columns=legacy.FORMER_TO_LOF)
    shuffled = by_lof_name[list(reversed(FEATURES))]  # any column order: features go by name
    expected = mlp.predict_proba(train)
    assert np.array_equal(wrapped.predict_proba(shuffled), expected)
    assert np.array_equal(wrapped.predict(by_lof_name), expected.argmax(axis=1) + 1)
    assert list(wrapped.feature_names_in_) == list(FEATURES)
    assert list(wrapped.classes_) == [1, 2, 3, 4, 5]
    assert wrapped.input_scaling == legacy.WITHIN_CLASS


def test_global_scaling_is_over_all_classes_together_and_chosen_per_model():
    raw = pd.DataFrame(
        {"class_id": [1, 1, 2, 2], "user_id": [1, 2, 3, 4], **{f: [0.0] * 4 for f in FEATURES}}
    )
    raw["class_view_count"] = [0.0, 10.0, 20.0, 40.0]
    together = legacy.scale_globally(features=raw)
    assert together["class_view_count"].tolist() == [0.0, 0.25, 0.5, 1.0]
    assert together["avglevel"].tolist() == [0.0] * 4  # constant feature becomes 0
    within = pd.DataFrame({"marker": [1]})
    mlp, _ = fitted_mlp()
    fed_global = legacy.LegacyModel(mlp, input_scaling=legacy.GLOBAL)
    assert legacy.model_inputs(model=fed_global, raw=raw, scaled=within).equals(together)
    assert legacy.model_inputs(model=legacy.LegacyModel(mlp), raw=raw, scaled=within) is within
    assert legacy.model_inputs(model=mlp, raw=raw, scaled=within) is within  # retrained


# --- loading and checking files ---------------------------------------------------------------


def test_joblib_and_pickle_files_load_with_their_sha256(tmp_path):
    mlp, inputs = fitted_mlp()
    as_joblib, as_pickle = tmp_path / "model.joblib", tmp_path / "model.pkl"
    joblib.dump(mlp, as_joblib)
    as_pickle.write_bytes(pickle.dumps(mlp))
    for path in (as_joblib, as_pickle):
        loaded = legacy.load_classifier(path)
        assert np.array_equal(loaded.estimator.predict_proba(inputs), mlp.predict_proba(inputs))
        assert loaded.pickled_with is None
        import hashlib

        assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_pickle_from_another_version_loads_and_says_which(tmp_path):
    mlp, inputs = fitted_mlp()
    path = tmp_path / "former.pkl"
    path.write_bytes(_pickle_claiming(mlp, "1.0.2"))
    loaded = legacy.load_classifier(path)
    assert loaded.pickled_with == "1.0.2"
    assert any("InconsistentVersionWarning" in n or "1.0.2" in n for n in loaded.warnings)
    assert np.array_equal(loaded.estimator.predict_proba(inputs), mlp.predict_proba(inputs))


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input and the words its one-line error must hold."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    inputs, level = former_frame()
    files: dict[str, tuple[Path, str]] = {}

    def save(name: str, obj, match: str) -> None:
        path = tmp_path / f"{name}.pkl"
        joblib.dump(obj, path)
        files[name] = (path, match)

    save("not_a_classifier", StandardScaler().fit(inputs), "not a fitted scikit-learn classifier")
    save(
        "wrong_input_count",
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=50).fit(inputs.iloc[:, :12], level),
        "takes 12 inputs, not 13",
    )
    save(
        "wrong_classes",
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=50).fit(inputs, level - 1),
        "predicts classes \\[0.0, 1.0, 2.0, 3.0, 4.0\\], not the levels 1-5",
    )
    unreadable = tmp_path / "unreadable.pkl"
    unreadable.write_bytes(b"Target,N_avglevel\n1,0.5\n")
    files["unreadable"] = (unreadable, "cannot unpickle model file")
    files["missing"] = (tmp_path / "absent.pkl", "does not exist")
    mlp, _ = fitted_mlp()
    old = _pickle_claiming(mlp, "0.21.3", protocol=2).replace(
        b"sklearn.neural_network._multilayer_perceptron\n",
        b"sklearn.neural_network.multilayer_perceptron\n",
    )
    assert b"multilayer_perceptron\nMLPClassifier" in old
    incompatible = tmp_path / "incompatible.pkl"
    incompatible.write_bytes(old)
    files["incompatible_version"] = (
        incompatible,
        "was pickled with scikit-learn 0.21.3 and cannot be loaded with scikit-learn",
    )
    return files


def test_each_bad_file_gets_its_own_one_line_error(tmp_path):
    for name, (path, match) in bad_files(tmp_path).items():
        with pytest.raises(ModelError, match=match) as caught:
            legacy.load_classifier(path)
        assert "\n" not in str(caught.value), name
        assert str(path) in str(caught.value), name


def test_cli_refuses_each_bad_file_before_prefect_and_registers_nothing(
    tmp_path, lof_home, monkeypatch
):
    """In-process CLI: a refused file must answer before the flow module is even imported."""
    import sys

    monkeypatch.delitem(sys.modules, "flows.import_model", raising=False)
    runner = CliRunner()
    for name, (path, match) in bad_files(tmp_path).items():
        result = runner.invoke(app, ["import-model", str(path)])
        assert result.exit_code == 1, (name, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, result.output)
        assert pd.Series([lines[0]]).str.contains(match).all(), (name, lines[0])
    assert "flows.import_model" not in sys.modules
    settings = get_settings()
    found = registry.client(settings=settings).search_model_versions(
        f"name='{settings.model_name}'"
    )
    assert found == []
    good = tmp_path / "good.joblib"
    joblib.dump(fitted_mlp()[0], good)
    too_long = runner.invoke(app, ["import-model", str(good), "--description", "x" * 501])
    assert too_long.exit_code == 1
    assert "--description is 501 characters long" in too_long.output
    bad_day = runner.invoke(app, ["import-model", str(good), "--as-of", "2025-13-01"])
    assert bad_day.exit_code == 1 and "--as-of" in bad_day.output
    assert "flows.import_model" not in sys.modules


def test_cli_refuses_a_bad_dataset_before_prefect(tmp_path, lof_home, monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "flows.retrain", raising=False)
    values, levels = _former_values()
    path = tmp_path / "former.csv"
    values.drop(columns=["N_avglevel"]).assign(maxlevel=levels).to_csv(path)
    result = CliRunner().invoke(app, ["retrain", "--dataset", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "lacks column(s) avglevel" in lines[0], result.output
    assert "flows.retrain" not in sys.modules


# --- former training files --------------------------------------------------------------------


def _former_values(n: int = 6) -> tuple[pd.DataFrame, list[int]]:
    values = pd.DataFrame(
        np.round(np.random.default_rng(1).random((n, 13)), 4), columns=list(legacy.FORMER_COLUMNS)
    )
    return values, [1, 2, 3, 4, 5, 3][:n]


def test_former_file_a_index_target_then_features(tmp_path):
    values, levels = _former_values()
    frame = pd.concat([pd.DataFrame({"Target": levels}), values], axis=1)
    path = tmp_path / "a.csv"
    frame.to_csv(path)  # pandas writes the unnamed index column first, as the former files have
    assert Path(path).read_text().startswith(",Target,N_specific_act_view,")
    rows = read_legacy_dataset(path)
    assert rows["label"].tolist() == levels
    assert np.allclose(rows["act_quiz_view"], values["N_act+quiz_view"])
    assert np.allclose(rows["activity_count_per_class"], values["N_activity_count"])
    assert np.allclose(rows["specific_activity_view"], values["N_specific_act_view"])
    assert (rows["class_id"] == -1).all() and (rows["progress"] == 1.0).all()


def test_former_file_b_features_then_maxlevel_and_lof_names(tmp_path):
    values, levels = _former_values()
    path = tmp_path / "b.csv"
    values.assign(maxlevel=levels).to_csv(path, index=False)
    rows = read_legacy_dataset(path)
    assert rows["label"].tolist() == levels
    assert np.allclose(rows["avglevel"], values["N_avglevel"])
    lof_named = tmp_path / "lof.csv"
    values.rename(columns=legacy.FORMER_TO_LOF).assign(Target=levels).to_csv(lof_named)
    assert read_legacy_dataset(lof_named)[list(FEATURES)].equals(rows[list(FEATURES)])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda f: f.drop(columns=["N_avglevel"]), "lacks column\\(s\\) avglevel"),
        (lambda f: f.drop(columns=["maxlevel"]), "lacks column\\(s\\) Target"),
        (lambda f: f.assign(Target=1), "both Target and maxlevel"),
        (
            lambda f: f.assign(maxlevel=[1, 2, 3, 4, 6, 3]),
            "maxlevel outside 1-5, first at data row 5",
        ),
        (
            lambda f: f.assign(**{"N_avglevel": ["a", 0.1, 0.1, 0.1, 0.1, 0.1]}),
            "non-numeric feature .* first at data row 1",
        ),
    ],
)
def test_bad_former_files_are_refused_with_one_line(tmp_path, edit, match):
    values, levels = _former_values()
    path = tmp_path / "bad.csv"
    edit(values.assign(maxlevel=levels)).to_csv(path, index=False)
    with pytest.raises(DataError, match=match) as caught:
        read_legacy_dataset(path)
    assert "\n" not in str(caught.value)


def test_former_rows_have_no_signals_so_a_retrain_with_them_trains_on_the_13(tmp_path):
    from lof.features.signals import SIGNALS
    from lof.model import outcome as lof_model

    values, levels = _former_values()
    path = tmp_path / "a.csv"
    pd.concat([pd.DataFrame({"Target": levels}), values], axis=1).to_csv(path)
    rows = read_legacy_dataset(path)
    assert rows[list(SIGNALS)].isna().all().all()
    assert lof_model.training_features(rows) == list(FEATURES)
