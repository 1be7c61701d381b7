"""The Components panel in a real JupyterLab: search the registry as you type, read a
component's page (a closable main-area tab, one per component, as Lab opens documents),
insert its pinned snippet below the active cell and run it; the source filter names each
source once; a directory source's names and summaries reach the page as text, never as
markup; the Sources view lists invalid components; publishing without a hub says why."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import nbformat
import pytest

from .conftest import screenshot, start_lab, stop_lab

pytestmark = [pytest.mark.browser]

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
XSS_SUMMARY = '<img src=x onerror="window.__mlfXss=1"> shown as text'
PANEL = '[data-testid="mlfactory-components"]'
MAIN = "#jp-main-dock-panel"


def write_component(
    folder: Path, name: str, summary: str, readme: str, version: str = "0.1.0"
) -> None:
    """A valid directory-source component (all inputs have defaults)."""
    folder.mkdir(parents=True)
    (folder / "component.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            version: {version}
            summary: {json.dumps(summary)}
            description: {json.dumps('<b onmouseover="window.__mlfXss=2">bold</b> description')}
            categories: [testing]
            tags: [probe]
            stability: experimental
            owners: ["<i>team</i>"]
            source: {name}.py
            entry_point: {name}
            inputs:
              - name: value
                type: int
                description: "<script>window.__mlfXss=3</script>"
                default: 1
            outputs:
              - {{name: doubled, type: int, description: Twice the value}}
            example: {json.dumps(f"{name}(value=2)")}
            last_verified: 2026-11-26
            """
        )
    )
    (folder / f"{name}.py").write_text(f"def {name}(value=1):\n    return value * 2\n")
    (folder / "README.md").write_text(readme)


@pytest.fixture
def components_lab(tmp_path: Path):
    """A lab with a notebook and a directory source holding a component whose texts carry
    markup, plus a folder that is not a valid component."""
    source = tmp_path / "team-components"
    for version in ("0.1.0", "0.2.0"):
        write_component(
            source / "markup_probe" / version,
            "markup_probe",
            XSS_SUMMARY,
            "# Markup probe\n\nRendered **README**.\n\n"
            '<img src=x onerror="window.__mlfXss=4"><script>window.__mlfXss=5</script>\n',
            version=version,
        )
    broken = source / "broken_probe"
    broken.mkdir()
    (broken / "component.yaml").write_text("name: broken_probe\nversion: not-a-version\n")

    root = tmp_path / "work"
    root.mkdir()
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    notebook.cells.append(nbformat.v4.new_code_cell("first = 1"))
    nbformat.write(notebook, root / "analysis.ipynb")
    env = {
        "MLFACTORY_COMPONENT_SOURCES": json.dumps([{"name": "team", "path": str(source)}]),
        "MLFACTORY_COMPONENT_CACHE": str(tmp_path / "component-cache"),
    }
    lab = start_lab(root, env=env)
    yield lab
    stop_lab(lab)


def open_panel(page, lab, notebook: str | None = "analysis.ipynb") -> None:
    page.goto(lab.lab_url(notebook or ""))
    if notebook:
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    page.locator('.jp-SideBar [data-id="mlfactory-components"]').click()
    page.locator(PANEL).wait_for(state="visible")


def search(page, text: str):
    box = page.get_by_test_id("components-search")
    box.fill("")
    box.type(text, delay=30)  # as a person types: each key restarts the debounce
    page.locator(
        f'{PANEL} [data-testid="components-results"][data-query="{text}"][aria-busy="false"]'
    ).wait_for()
    return page.locator(f'{PANEL} [data-testid="components-result"]')


def dismiss_toasts(page) -> None:
    """Close Lab's news question so that screenshots show the panel and the notebook."""
    no = page.locator(".Toastify").get_by_role("button", name="No")
    if no.count():
        no.first.click()
        page.locator(".Toastify__toast").first.wait_for(state="detached")


def component_page(page, name: str):
    """The main-area page of component ``name``."""
    return page.locator(f'{MAIN} [data-testid="components-page"][data-component="{name}"]')


def main_tabs(page, name: str):
    """The main area's tabs titled ``name``."""
    return page.locator(f"{MAIN} .lm-TabBar-tab").filter(
        has=page.locator(".lm-TabBar-tabLabel", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def source_options(page) -> list[str]:
    return [
        o.text_content()
        for o in page.get_by_test_id("components-filter-source").locator("option").all()
    ]


def input_row(inputs, name: str):
    return inputs.locator(f'tbody tr:has(td:first-child code:text-is("{name}"))')


def cell_source(cell) -> str:
    return "\n".join(line.text_content() for line in cell.locator(".cm-line").all())


def test_search_read_insert_and_run(components_lab, page):
    lab = components_lab
    open_panel(page, lab)

    results = search(page, "split")
    # Ranked: names containing "split" first, time_split among them.
    names = [item.get_attribute("data-name") for item in results.all()]
    assert "time_split" in names[:3], names
    assert all("split" in n for n in names[:2]), names
    status = page.get_by_test_id("components-status").text_content()
    assert re.match(r"\d+ components?", status), status
    dismiss_toasts(page)
    screenshot(page, "components-panel-results")

    # The source filter names each source once: the built-ins are "Built-in", not
    # "builtin · builtin".
    options = source_options(page)
    assert any(re.fullmatch(r"Built-in \(\d+\)", o) for o in options), options
    assert not any("builtin" in o for o in options), options

    # Keyboard: from the search box down to time_split, Enter opens its page in the main
    # area, as a closable tab, wide enough for its tables.
    page.get_by_test_id("components-search").press("ArrowDown")
    for _ in range(names.index("time_split")):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page_view = component_page(page, "time_split")
    page_view.get_by_role("heading", name="time_split", level=3).wait_for()
    tab = main_tabs(page, "time_split")
    assert tab.count() == 1
    assert "lm-mod-closable" in tab.get_attribute("class")
    assert "lm-mod-current" in tab.get_attribute("class")
    assert page.locator(f"{PANEL} [data-testid='components-page']").count() == 0
    sidebar_width = page.locator(PANEL).bounding_box()["width"]
    assert page_view.bounding_box()["width"] > 2 * sidebar_width
    inputs = page_view.locator(".mlfactory-Components-inputs")
    assert "timestamps" in inputs.text_content()
    assert "required" in input_row(inputs, "timestamps").text_content()
    assert "0.2" in input_row(inputs, "test_size").text_content()
    assert "train_index" in page_view.locator(".mlfactory-Components-outputs").text_content()
    readme = page_view.get_by_test_id("components-readme")
    readme.locator("h1", has_text="time_split").wait_for()  # rendered Markdown, not text
    assert "leak the future" in readme.text_content()
    assert page_view.get_by_test_id("components-ref").text_content() == "time_split@1.0.0"
    assert page_view.get_by_test_id("components-source").text_content() == "Built-in"
    assert page_view.get_by_test_id("components-owners").text_content()
    screenshot(page, "components-panel")

    insert = page_view.get_by_test_id("components-insert")
    assert insert.is_enabled()
    insert.click()
    cells = page.locator(".jp-Notebook .jp-Cell")
    page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-Cell').length === 2")
    new_cell = cells.nth(1)
    source = cell_source(new_cell)
    assert 'use("time_split@1.0.0")' in source, source
    assert cell_source(cells.nth(0)) == "first = 1"  # inserted below the active cell

    # Fill the required input, then run the cell with Shift+Enter.
    assert re.search(r"^timestamps = \.\.\.", source, re.M), source
    filled = re.sub(r"^timestamps = \.\.\..*$", "timestamps = list(range(10))", source, flags=re.M)
    filled += '\nprint("test rows:", [int(i) for i in test_index])'
    new_cell.locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(filled)
    page.keyboard.press("Shift+Enter")
    output = new_cell.locator(".jp-OutputArea-output")
    output.filter(has_text="test rows:").wait_for(timeout=60_000)
    assert "test rows: [8, 9]" in output.text_content()
    assert new_cell.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
    assert new_cell.locator(".jp-InputPrompt").text_content().strip() == "[1]:"

    # Dragging a result onto the first cell inserts the snippet there.
    before = cells.count()  # Shift+Enter on the last cell added an empty one
    result = page.locator(f'{PANEL} [data-testid="components-result"][data-name="time_split"]')
    target = cells.nth(0).locator(".jp-InputArea").bounding_box()
    result.hover()
    page.mouse.down()
    box = result.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2 + 10, box["y"] + box["height"] / 2, steps=2)
    page.wait_for_timeout(500)  # the snippet arrives, the drag starts
    page.mouse.move(target["x"] + 40, target["y"] + target["height"] / 2, steps=10)
    page.mouse.up()
    page.wait_for_function(
        "n => document.querySelectorAll('.jp-Notebook .jp-Cell').length === n", arg=before + 1
    )
    assert 'use("time_split@1.0.0")' in cell_source(cells.nth(0))
    assert cell_source(cells.nth(1)) == "first = 1"

    # Opening time_split again brings its tab back rather than opening a second one;
    # another component gets a tab of its own; closing a tab closes its page.
    notebook_tab = main_tabs(page, "analysis.ipynb")
    assert "lm-mod-current" in notebook_tab.get_attribute("class")
    result.click()
    page.wait_for_function(
        "() => document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current')"
        "?.textContent.trim() === 'time_split'"
    )
    assert main_tabs(page, "time_split").count() == 1
    assert page_view.is_visible()
    other_name = next(n for n in names if n != "time_split")  # the list still shows "split"
    page.locator(f'{PANEL} [data-testid="components-result"][data-name="{other_name}"]').click()
    component_page(page, other_name).get_by_role("heading", name=other_name, level=3).wait_for()
    assert main_tabs(page, other_name).count() == 1
    assert main_tabs(page, "time_split").count() == 1
    main_tabs(page, "time_split").locator(".lm-TabBar-tabCloseIcon").click()
    page_view.wait_for(state="detached")
    assert main_tabs(page, "time_split").count() == 0
    assert main_tabs(page, other_name).count() == 1

    # A category on the page filters the panel's list by it.
    chip = component_page(page, other_name).locator(".mlfactory-Components-chip").first
    category = chip.text_content()
    chip.click()
    page.locator(
        f'{PANEL} [data-testid="components-results"][data-query=""][aria-busy="false"]'
    ).wait_for()
    assert page.get_by_test_id("components-filter-category").input_value() == category
    assert page.get_by_test_id("components-search").input_value() == ""


def test_server_text_is_shown_as_text(components_lab, page):
    lab = components_lab
    open_panel(page, lab, notebook=None)

    results = search(page, "markup")
    probe = results.filter(has=page.locator(".mlfactory-Components-name", has_text="markup_probe"))
    probe.wait_for()
    assert probe.locator(".mlfactory-Components-summary").text_content() == XSS_SUMMARY
    assert probe.locator(".mlfactory-Badge", has_text="team").count() == 1
    assert page.locator(f"{PANEL} img").count() == 0

    # The directory source reads as its name and kind, once.
    options = source_options(page)
    assert any(re.fullmatch(r"team · folder \(\d+\)", o) for o in options), options

    probe.click()
    page_view = component_page(page, "markup_probe")
    page_view.get_by_role("heading", name="markup_probe", level=3).wait_for()
    page_view.get_by_test_id("components-readme").locator("h1", has_text="Markup probe").wait_for()
    assert page_view.get_by_test_id("components-summary").text_content() == XSS_SUMMARY
    assert page_view.get_by_test_id("components-owners").text_content() == "<i>team</i>"
    assert page_view.get_by_test_id("components-source").text_content() == "team · folder"
    # The newest version is shown; the picker and the history reach the older one.
    assert page_view.get_by_test_id("components-ref").text_content() == "markup_probe@0.2.0"
    history = page_view.locator(".mlfactory-Components-history")
    assert "0.1.0" in history.text_content() and "0.2.0" in history.text_content()
    page_view.get_by_test_id("components-version").select_option("0.1.0")
    page_view.get_by_test_id("components-ref").filter(has_text="markup_probe@0.1.0").wait_for()
    page_view.get_by_test_id("components-readme").locator("h1", has_text="Markup probe").wait_for()
    assert main_tabs(page, "markup_probe").count() == 1  # the same tab, another version
    insert = page_view.get_by_test_id("components-insert")
    assert insert.is_disabled()  # no notebook is open
    assert "Open a notebook" in insert.get_attribute("title")
    assert "<script>" in page_view.locator(".mlfactory-Components-inputs").text_content()
    # The README went through the sanitizer: no script, no handler attributes.
    readme = page_view.get_by_test_id("components-readme")
    assert readme.locator("script").count() == 0
    assert readme.locator("[onerror], [onmouseover]").count() == 0
    assert page_view.locator("b, i, script").count() == 0
    page_view.hover()
    page.wait_for_timeout(300)  # let any injected handler run (image errors fire async)
    assert page.evaluate("window.__mlfXss") is None

    # The Sources view shows the directory source and the invalid component.
    page.get_by_test_id("components-tab-sources").click()
    sources = page.get_by_test_id("components-sources")
    team = sources.get_by_test_id("components-source-item").filter(has_text="team")
    team.wait_for()
    assert "directory" in team.text_content() and "ok" in team.text_content()
    invalid = page.get_by_test_id("components-invalid")
    invalid.wait_for()
    assert "broken_probe" in invalid.text_content()
    assert "component.yaml" in invalid.text_content()
    screenshot(page, "components-panel-sources")
    refresh = page.get_by_test_id("components-sources-refresh")
    refresh.click()  # the owner may refresh; the view reloads with the same sources
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"components-sources-refresh\"]').disabled"
    )
    assert sources.locator('[role="alert"]').count() == 0
    assert team.is_visible()

    # Publishing needs the hub service here: the panel says so and stays usable.
    page.get_by_test_id("components-tab-publish").click()
    alert = page.locator(f'{PANEL} [data-testid="components-submissions"] [role="alert"]')
    alert.wait_for()
    assert alert.text_content().strip()
    page.get_by_test_id("components-tab-browse").click()
    assert page_view.is_visible()  # the page lives in the main area, not in the panel
    assert page.evaluate("window.__mlfXss") is None

    # Like a document, the page comes back after a reload, at the version last shown.
    page.reload()
    page_view.get_by_test_id("components-ref").filter(has_text="markup_probe@0.1.0").wait_for()
    assert main_tabs(page, "markup_probe").count() == 1
    assert page_view.get_by_test_id("components-summary").text_content() == XSS_SUMMARY
    assert page.evaluate("window.__mlfXss") is None


def test_reviewer_sees_pending_submissions_and_approves(lab, page):
    """The hub service is stood in for by routes in the browser: it lists one pending
    submission to a reviewer and records the decision the panel posts."""
    decisions: list[dict] = []
    pending = [
        {
            "id": 7,
            "name": "churn_<b>model</b>",
            "version": "1.0.0",
            "owner": "alice",
            "status": "pending",
            "submitted_at": "2026-11-26T10:00:00Z",
            "revision": "1795000000.250000",
            "reviewer": None,
            "note": None,
            "reviewed_at": None,
        }
    ]
    source = "def churn():\n    return '<img src=x onerror=window.__mlfXss=1>'\n"

    def service(route):
        request = route.request
        if request.url.split("?")[0].endswith("/submissions/7"):
            detail = {**pending[0], "contents": {"churn.py": source}}
            body = {"submission": detail}
        elif request.method == "POST":
            decisions.append(
                {
                    "url": request.url,
                    "xsrf": bool(request.headers.get("x-xsrftoken")),
                    **json.loads(request.post_data),
                }
            )
            pending.clear()
            body = {"submission": {"id": 7, "status": "approved"}}
        else:
            body = {"submissions": pending, "can_review": True}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/mlfactory/components/submissions**", service)
    open_panel(page, lab, notebook=None)
    page.get_by_test_id("components-tab-publish").click()
    item = page.get_by_test_id("components-submission")
    item.wait_for()
    assert "churn_<b>model</b>@1.0.0" in item.text_content()
    assert "alice" in item.text_content()
    approve = item.get_by_role("button", name="Approve")
    assert approve.is_disabled()  # nothing is approved unread
    item.get_by_test_id("components-submission-read").click()
    file = item.get_by_test_id("components-submission-file")
    file.wait_for()
    file.locator("summary").click()
    assert file.locator("pre").text_content() == source  # shown as text
    assert page.evaluate("window.__mlfXss") is None
    item.get_by_role("textbox").fill("tests pass, README is clear")
    approve.click()
    page.get_by_test_id("components-submissions").get_by_text("None pending.").wait_for()
    assert len(decisions) == 1
    assert decisions[0]["url"].split("?")[0].endswith("/mlfactory/components/submissions/7/review")
    assert decisions[0]["xsrf"]  # Lab's XSRF header on a state change
    assert decisions[0]["decision"] == "approve"
    assert decisions[0]["note"] == "tests pass, README is clear"
    assert decisions[0]["revision"] == "1795000000.250000"  # the upload that was read
