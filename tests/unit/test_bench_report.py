"""The bench's arithmetic and printing: percentiles, throughput ratios, tables, ratio lines, JSON."""

from __future__ import annotations

import json
import math

import pytest

from bench.report import (
    CellResult,
    Ratio,
    RoundResult,
    build_document,
    combine_rounds,
    compute_ratios,
    headline_ratios,
    percentile,
    render_machine,
    render_table,
    throughput_ratio,
)


def cell(
    contender: str, workload: str = "thumb", parallelism: int = 1, *, images: int = 10, wall: float = 2.0
):
    return CellResult(
        contender=contender,
        workload=workload,
        parallelism=parallelism,
        wall_seconds=wall,
        latencies=tuple(0.1 * (i + 1) for i in range(images)),
        cpu_seconds={"runner": images * 0.05},
        peak_rss_bytes={"runner": 100 * 1024 * 1024, "nats-server": 20 * 1024 * 1024},
    )


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([float(v) for v in range(101)], 99, 99.0),
        ([10.0, 0.0], 25, 2.5),
        ([7.0], 99, 7.0),
    ],
)
def test_percentile_interpolates_linearly_between_ranks(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_refuses_no_values_and_out_of_range_quantiles():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_cell_derives_throughput_cpu_per_image_latency_and_total_rss():
    result = cell("raw-libvips", images=10, wall=2.0)
    assert result.images == 10
    assert result.images_per_second == pytest.approx(5.0)
    assert result.cpu_seconds_per_image == pytest.approx(0.05)
    assert result.p50_seconds == pytest.approx(0.55)
    assert result.p99_seconds == pytest.approx(0.991)
    assert result.total_peak_rss_bytes == 120 * 1024 * 1024


def test_throughput_ratio_divides_images_per_second():
    fast = cell("pixelmesh-worker", images=10, wall=2.0)
    slow = cell("thumbor", images=10, wall=4.0)
    assert throughput_ratio(fast, slow) == pytest.approx(2.0)
    assert throughput_ratio(slow, fast) == pytest.approx(0.5)


def test_throughput_ratio_against_a_baseline_that_made_nothing_is_nan():
    empty = cell("thumbor", images=10, wall=0.0)
    assert math.isnan(throughput_ratio(cell("pillow"), empty))


def test_ratios_pair_cells_of_the_same_workload_and_parallelism_and_skip_self():
    results = [
        cell("raw-libvips", "thumb", 1, wall=1.0),
        cell("pixelmesh-worker", "thumb", 1, wall=2.0),
        cell("raw-libvips", "thumb", 2, wall=0.5),
        cell("pixelmesh-worker", "thumb", 2, wall=0.8),
        cell("pixelmesh-worker", "avif", 2, wall=9.0),
    ]
    ratios = compute_ratios(results)
    assert [(r.contender, r.baseline, r.workload, r.parallelism) for r in ratios] == [
        ("pixelmesh-worker", "raw-libvips", "thumb", 1),
        ("pixelmesh-worker", "raw-libvips", "thumb", 2),
    ]
    assert ratios[0].value == pytest.approx(0.5)
    assert ratios[1].value == pytest.approx(0.625)


def test_headline_ratios_are_the_highest_parallelism_raw_libvips_first():
    results = [
        cell(name, workload, parallelism)
        for parallelism in (1, 2)
        for name in ("raw-libvips", "pixelmesh-worker", "thumbor")
        for workload in ("thumb", "web-set")
    ]
    headline = headline_ratios(compute_ratios(results))
    assert {r.parallelism for r in headline} == {2}
    baselines = [r.baseline for r in headline]
    assert baselines == sorted(baselines, key=["raw-libvips", "thumbor"].index)
    assert len(headline) == 8  # 2 workloads x (2 against raw-libvips + 2 against thumbor)


def test_ratio_line_has_the_documented_shape():
    ratio = Ratio("pixelmesh-worker", "raw-libvips", "web-set", 2, 0.934)
    assert ratio.line() == "ratio pixelmesh-worker/raw-libvips web-set: 0.93"


def test_table_has_a_row_per_cell_of_the_workload_with_both_ratio_columns():
    results = [
        cell("raw-libvips", "thumb", 1, wall=1.0),
        cell("thumbor", "thumb", 1, wall=2.0),
        cell("pillow", "thumb", 1, wall=4.0),
        cell("pillow", "avif", 1, wall=4.0),
    ]
    table = render_table("thumb", "a thumbnail", results).splitlines()
    assert table[0] == "== thumb: a thumbnail"
    assert "vs raw-libvips" in table[1]
    assert "vs thumbor" in table[1]
    rows = table[3:]
    assert [row.split()[0] for row in rows] == ["raw-libvips", "thumbor", "pillow"]
    pillow = rows[2].split()
    assert pillow[1] == "1"
    assert pillow[2] == "2.50"  # images/s
    assert pillow[-2:] == ["0.25", "0.50"]  # vs raw-libvips, vs thumbor
    assert rows[0].split()[-2:] == ["1.00", "2.00"]


def test_table_marks_a_missing_baseline_with_a_dash():
    table = render_table("thumb", "x", [cell("raw-libvips"), cell("pillow", wall=4.0)])
    assert table.splitlines()[-1].split()[-2:] == ["0.50", "-"]


def test_machine_facts_flatten_to_dotted_lines():
    text = render_machine({"cpu": "EPYC", "libvips": {"version": "8.18.7", "simd": ["AVX2", "SSE4"]}})
    assert text.splitlines() == ["cpu: EPYC", "libvips.version: 8.18.7", "libvips.simd: AVX2, SSE4"]


def test_document_is_json_and_carries_the_headline_lines():
    results = [cell("raw-libvips", "thumb", 2), cell("thumbor", "thumb", 2, wall=4.0)]
    document = build_document(machine={"cores": 2}, run={"mode": "quick"}, settings={}, results=results)
    again = json.loads(json.dumps(document))
    assert again["headline_ratios"] == [
        "ratio thumbor/raw-libvips thumb: 0.50",
        "ratio raw-libvips/thumbor thumb: 2.00",
    ]
    assert again["results"][0]["images_per_second"] == pytest.approx(5.0)
    assert again["results"][1]["peak_rss_bytes_by_role"] == {"runner": 104857600, "nats-server": 20971520}


def test_rounds_combine_by_adding_time_latencies_and_cpu_and_keeping_the_highest_peak():
    rounds = [
        RoundResult(2.0, (0.5, 0.6), {"worker": 1.0, "nats-server": 0.1}, {"worker": 300, "nats-server": 50}),
        RoundResult(3.0, (0.7,), {"worker": 1.5}, {"worker": 250, "nats-server": 60}),
    ]
    combined = combine_rounds("pixelmesh-worker", "thumb", 2, rounds, {"thumb": 14000.0})
    assert combined.wall_seconds == pytest.approx(5.0)
    assert combined.latencies == (0.5, 0.6, 0.7)
    assert combined.cpu_seconds == pytest.approx({"worker": 2.5, "nats-server": 0.1})
    assert combined.peak_rss_bytes == {"worker": 300, "nats-server": 60}
    assert combined.images_per_second == pytest.approx(0.6)
    assert combined.output_bytes == {"thumb": 14000.0}


def test_a_cell_needs_at_least_one_round():
    with pytest.raises(ValueError, match="no measured rounds"):
        combine_rounds("pillow", "thumb", 1, [])
