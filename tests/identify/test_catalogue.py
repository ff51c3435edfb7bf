from __future__ import annotations

import json

import pytest

from riskdesk.identify.catalogue import (
    BUILTIN_SOURCES,
    CatalogueError,
    parse_sources_csv,
    parse_sources_json,
)
from riskdesk.identify.config import IdentifyConfig


def test_builtin_catalogue_has_the_four_sources_in_both_languages() -> None:
    codes = {s.code for s in BUILTIN_SOURCES}
    assert {"market", "credit", "contract", "demand"} <= codes
    for s in BUILTIN_SOURCES:
        assert s.name_en and s.name_zh and s.manifestations
        for m in s.manifestations:
            assert m.code.startswith(s.code + ".") and m.name_en and m.name_zh
            assert m.description_en and m.description_zh
    names = {s.code: s.name("zh") for s in BUILTIN_SOURCES}
    assert names["market"] == "市场环境变化" and names["demand"] == "客户需求变化"


def test_json_sources_file_is_parsed() -> None:
    text = json.dumps(
        {
            "sources": [
                {
                    "code": "supply",
                    "name_en": "Supply chain",
                    "name_zh": "供应链",
                    "manifestations": [
                        {
                            "code": "supply.late_delivery",
                            "name_en": "Late delivery",
                            "name_zh": "延迟交货",
                            "severity": "High",
                        }
                    ],
                }
            ]
        }
    )
    [src] = parse_sources_json(text)
    assert src.code == "supply" and src.manifestations[0].severity == "high"


def test_json_file_with_errors_lists_every_bad_entry() -> None:
    text = json.dumps(
        [
            {"code": "credit", "name_en": "x", "name_zh": "x"},
            {"code": "ok_one", "name_en": "x"},
            {"code": "Bad Code", "name_en": "x", "name_zh": "y"},
        ]
    )
    with pytest.raises(CatalogueError) as exc:
        parse_sources_json(text)
    lines = {e.line for e in exc.value.errors}
    assert lines == {1, 2, 3}
    assert any("built-in" in e.reason for e in exc.value.errors)
    assert any(e.column.endswith("name_zh") for e in exc.value.errors)


def test_csv_sources_group_rows_by_source_and_report_line_and_column() -> None:
    good = (
        "source_code,source_name_en,source_name_zh,manifestation_code,manifestation_name_en,"
        "manifestation_name_zh,severity\n"
        "supply,Supply,供应,supply.late,Late delivery,延迟交货,medium\n"
        "supply,Supply,供应,supply.quality,Quality issue,质量问题,low\n"
    )
    [src] = parse_sources_csv(good)
    assert [m.code for m in src.manifestations] == ["supply.late", "supply.quality"]
    bad = good + "supply,Supply,供应,supply.x,X,叉,urgent\n"
    with pytest.raises(CatalogueError) as exc:
        parse_sources_csv(bad)
    [err] = exc.value.errors
    assert (err.line, err.column) == (4, "severity")
    with pytest.raises(CatalogueError) as exc:
        parse_sources_csv("source_code,severity\nx,low\n")
    assert {e.column for e in exc.value.errors} >= {"source_name_en", "manifestation_code"}


def test_config_overrides_merge_over_defaults_and_unknown_keys_are_refused() -> None:
    cfg = IdentifyConfig.merged({"demand": {"drop_ratio": 0.4}}, {"credit": {"escalate_count": 3}})
    assert cfg.demand.drop_ratio == 0.4 and cfg.credit.escalate_count == 3
    assert cfg.demand.silent_factor == IdentifyConfig().demand.silent_factor
    with pytest.raises(ValueError):
        IdentifyConfig.merged({"nope": {}})
    with pytest.raises(ValueError):
        IdentifyConfig.merged({"credit": {"no_such_threshold": 1}})
    with pytest.raises(ValueError):
        IdentifyConfig.merged({"credit": {"overdue_severity": {"1_30": "dreadful"}}})
