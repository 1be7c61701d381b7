"""The picker's view model: choices, remembered values, notices and advisory notes."""

from __future__ import annotations

import pytest
from mlfactory.hub.platform_config import PACKAGED_CONFIG, load_platform_config
from mlfactory.spawner.form import GPU_ADVISORY, Enforcement, picker_for_user, remembered_values
from mlfactory.spawner.profiles import (
    HostCapabilities,
    user_access,
)

CONFIG = load_platform_config(PACKAGED_CONFIG)
HOST = HostCapabilities()


def view(groups=("ml-engineering",), previous_options=None, enforcement=None):
    return picker_for_user(
        CONFIG,
        user_access(CONFIG, groups, False),
        HOST,
        previous_options or {},
        enforcement or Enforcement(cpu=True, memory=True),
    )


def test_cards_follow_the_groups_choices_and_default():
    v = view()
    assert [c.slug for c in v.cards] == ["cpu-small", "cpu-medium", "cpu-large", "gpu-t4"]
    assert v.selected_profile == "cpu-medium"  # ml-engineering's default profile
    assert v.selected_project == "personal" and v.notice is None
    gpu = next(c for c in v.cards if c.slug == "gpu-t4")
    assert not gpu.available and "GPU" in gpu.reason


def test_only_gpu_cards_say_gpu_assignment_is_advisory():
    notes = {c.slug: c.notes for c in view().cards}
    assert GPU_ADVISORY in notes["gpu-t4"]
    assert GPU_ADVISORY not in notes["cpu-small"]
    assert "Disk size is advisory on this host" in notes["cpu-small"]
    assert "CPU limit is advisory on this host" not in notes["cpu-small"]


def test_host_without_cgroups_marks_cpu_and_memory_advisory():
    notes = view(enforcement=Enforcement(cpu=False, memory=False)).cards[0].notes
    assert "CPU limit is advisory on this host" in notes
    assert "Memory limit is advisory on this host" in notes


def test_last_choice_is_preselected_with_its_values():
    v = view(previous_options={"profile": "cpu-large", "cpu": "3", "memory": "12Gi"})
    assert v.selected_profile == "cpu-large"
    assert v.selected_values == {"cpu": 3.0, "memory": 12.0, "gpu": 0.0}
    large = next(c for c in v.cards if c.slug == "cpu-large")
    assert large.ranges["cpu"].value == 3.0 and large.ranges["memory"].value == 12.0
    assert large.unit_prices == {
        "cpu": 0.04,
        "memory": 0.005,
        "gpu": 0.9,
        "base": pytest.approx(50 * 0.08 / 730),  # the profile's fixed 50 GiB disk
    }


def test_choice_no_longer_allowed_falls_back_with_a_notice():
    v = view(groups=("data-science",), previous_options={"profile": "gpu-t4"})
    assert v.selected_profile == "cpu-small"
    assert v.notice and "no longer available" in v.notice


def test_remembered_values_ignore_other_profiles_and_junk():
    assert remembered_values({"profile": "a", "cpu": "2"}, "b") == {}
    assert remembered_values({"profile": "a", "cpu": "x", "memory": "4G"}, "a") == {}
    assert remembered_values({"profile": "a", "gpu": 2, "memory": "4Gi"}, "a") == {
        "gpu": 2.0,
        "memory": 4.0,
    }
