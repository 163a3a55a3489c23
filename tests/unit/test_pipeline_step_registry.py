"""Every operation of the `Step` union has exactly one step module, under its wire name."""

from __future__ import annotations

from pixelmesh.api.pipeline import Step
from pixelmesh.worker.steps.registry import BY_MODEL, STEPS


def test_every_step_operation_has_a_registered_step_named_by_its_wire_name():
    union = {info.alias or name: info.annotation for name, info in Step.model_fields.items()}
    registered = {definition.name: definition.model for definition in STEPS}
    assert set(registered) == set(union)
    for wire_name, model in registered.items():
        assert union[wire_name] == model | None


def test_each_model_maps_to_one_step():
    assert len(BY_MODEL) == len(STEPS)


def test_only_resizing_steps_shrink_on_load_and_only_settings_steps_skip_pixels():
    assert {d.name for d in STEPS if d.shrinks_on_load} == {"resize", "thumbnail"}
    assert {d.name for d in STEPS if not d.needs_pixels} == {"autorotate", "stripMetadata"}
