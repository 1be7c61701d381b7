"""The picker's view model: choices, remembered values, notices and advisory notes."""

from __future__ import annotations

import re

import pytest
from mlfactory.hub.platform_config import PACKAGED_CONFIG, load_platform_config
from mlfactory.spawner.form import GPU_ADVISORY, Enforcement, picker_for_user, remembered_values
from mlfactory.spawner.picker import render_picker
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


# --- the card states this user's limits (issue 21, item 8) -----------------------------------


def card(v, slug):
    return next(c for c in v.cards if c.slug == slug)


def test_the_adjustable_card_shows_the_groups_narrowed_ranges():
    # data-science caps CPU large at 4 cores and 32 GiB; ml-engineering keeps the 1–8, 4–64
    capped = card(view(groups=("data-science",)), "cpu-large").ranges
    assert (capped["cpu"].min, capped["cpu"].max) == (1, 4)
    assert (capped["memory"].min, capped["memory"].max, capped["memory"].step) == (4, 32, 4)
    full = card(view(), "cpu-large").ranges
    assert (full["cpu"].max, full["memory"].max) == (8, 64)


def test_the_rendered_card_states_the_capped_ranges():
    markup = render_picker(view(groups=("data-science",)))
    (text,) = re.findall(r'data-testid="ranges-cpu-large">([^<]*)</span>', markup)
    assert text == "You can choose 1–4 cores · 4–32 GiB memory in steps of 4 GiB"
    assert 'name="cpu--cpu-large" id="mlfactory-card-2-cpu" data-field="cpu" min="1" max="4"' in (
        markup
    )


SIZE = re.compile(r"\b[0-9]+\s*(?:[–-]\s*[0-9]+\s*)?(?:cores?|GiB|Gi|GB|GPUs?)\b")


def test_example_descriptions_leave_sizes_to_the_card():
    # A size in a description cannot follow a group's narrower range; the card states both.
    for profile in CONFIG.profiles:
        assert not SIZE.search(profile.description), (profile.slug, profile.description)


def test_gpu_range_is_capped_at_the_hosts_gpus():
    def gpu_range(gpus):
        host = HostCapabilities(gpu_count=gpus)
        v = picker_for_user(
            CONFIG,
            user_access(CONFIG, ("ml-engineering",), False),
            host,
            {},
            Enforcement(cpu=True, memory=True),
        )
        return card(v, "gpu-t4").ranges["gpu"]

    assert (gpu_range(2).min, gpu_range(2).max) == (1, 2)
    assert gpu_range(8).max == 4  # the profile's own 1–4
    assert gpu_range(4).max == 4
