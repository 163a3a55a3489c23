"""Child names and labels: valid Kubernetes names, stable, distinct per pipeline and region."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from pixelmesh.operator import names

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_a_short_name_is_kept_as_it_is() -> None:
    assert names.child_names("thumbnails", "eu-west").workers == "thumbnails-eu-west"
    assert names.child_names("thumbnails", "eu-west").pipeline_config == "thumbnails-eu-west-pipeline"


def test_dotted_long_and_numeric_names_fit_a_dns_label() -> None:
    for pipeline in ("media.thumbs.v2", "9patch", "x" * 200, "a" * 60):
        fitted = names.child_names(pipeline, "eu-west").workers
        assert DNS1035.match(fitted), fitted
        assert len(fitted) <= 63


def test_fitting_is_stable_across_processes_and_keeps_pipelines_apart() -> None:
    """A restarted operator must find the children it named before."""
    long_a, long_b = "p" * 70 + "a", "p" * 70 + "b"
    probe = f"from pixelmesh.operator import names; print(names.fit_label({long_a!r}))"
    other = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "1"},
    )
    assert other.stdout.strip() == names.fit_label(long_a)
    assert names.fit_label(long_a) != names.fit_label(long_b)
    assert names.child_names("thumbs", "eu-west") != names.child_names("thumbs", "us-east")


def test_labels_use_the_recommended_keys_and_valid_values() -> None:
    labels = names.worker_labels("media.thumbs." + "x" * 80, "eu-west", "eu-west-pool")
    assert labels[names.LABEL_PART_OF] == "pixelmesh"
    assert labels[names.LABEL_MANAGED_BY] == "pixelmesh-operator"
    assert all(k.startswith(("app.kubernetes.io/", "pixelmesh.io/")) for k in labels)
    assert all(len(v) <= 63 for v in labels.values())
    selector = names.selector_labels("thumbs", "eu-west")
    assert selector.items() <= names.worker_labels("thumbs", "eu-west").items()
