"""``riskdesk model`` on the German credit table: train, score, validate, report, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskdesk.cli import app

runner = CliRunner()


@pytest.fixture
def german(shared_data: Path) -> Path:
    return shared_data / "german_credit.csv"


def _train(german: Path, out: Path) -> dict:
    r = runner.invoke(
        app,
        [
            "model",
            "train",
            "--table",
            str(german),
            "--target",
            "creditability",
            "--bad-value",
            "bad",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_train_score_validate_and_report(german: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.json"
    res = _train(german, model)
    assert res["ok"] and res["rows"] == 1000 and res["bads"] == 300
    assert json.loads(model.read_text())["checksum"].startswith("sha256:")

    scores = tmp_path / "scores.csv"
    r = runner.invoke(
        app,
        [
            "model",
            "score",
            "--model",
            str(model),
            "--table",
            str(german),
            "--out",
            str(scores),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(scores.open()))
    assert len(rows) == 1000
    assert {"score", "pd", "grade", "reason_1"} <= set(rows[0])
    assert all(1 <= int(x["grade"]) <= 10 and 0 < float(x["pd"]) < 1 for x in rows)

    r = runner.invoke(
        app,
        [
            "model",
            "validate",
            "--model",
            str(model),
            "--table",
            str(german),
            "--target",
            "creditability",
            "--bad-value",
            "bad",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    v = json.loads(r.stdout)
    assert v["auc"] > 0.75 and v["gini"] == pytest.approx(2 * v["auc"] - 1)
    assert v["psi"] < 0.01  # the training table against its own distribution
    assert sum(g["rows"] for g in v["calibration_by_grade"]) == 1000

    html = tmp_path / "report.html"
    r = runner.invoke(
        app,
        [
            "model",
            "report",
            "--model",
            str(model),
            "--table",
            str(german),
            "--target",
            "creditability",
            "--bad-value",
            "bad",
            "--out",
            str(html),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    text = html.read_text()
    # plotly.js inline (no external script), so the file works offline
    assert "<script src=" not in text and "Plotly.newPlot" in text and len(text) > 1_000_000
    for section in ("1. Data", "2. Scorecard", "3. Performance", "4. Stability", "WoE", "PSI"):
        assert section in text


def test_a_tampered_model_is_refused_with_a_clear_error(german: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.json"
    _train(german, model)
    doc = json.loads(model.read_text())
    doc["features"][0]["woe"][0] = doc["features"][0]["woe"][0] + 0.5
    model.write_text(json.dumps(doc))
    out = tmp_path / "scores.csv"
    r = runner.invoke(
        app,
        [
            "model",
            "score",
            "--model",
            str(model),
            "--table",
            str(german),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code != 0
    assert "checksum" in json.loads(r.stdout)["error"]
    assert not out.exists()


def test_bad_input_fails_without_writing_anything(german: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    r = runner.invoke(
        app,
        ["model", "train", "--table", str(german), "--target", "nope", "--out", str(out), "--json"],
    )
    assert r.exit_code != 0 and "nope" in json.loads(r.stdout)["error"]
    r = runner.invoke(
        app,
        [
            "model",
            "train",
            "--table",
            str(german),
            "--target",
            "creditability",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code != 0 and "--bad-value" in json.loads(r.stdout)["error"]
    r = runner.invoke(
        app,
        [
            "model",
            "train",
            "--table",
            str(tmp_path / "missing.csv"),
            "--target",
            "x",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code != 0
    assert not out.exists()
