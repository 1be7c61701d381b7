"""A data scientist's first hour on a real hub, in Chromium (issue 21's acceptance test).

One newcomer walks the whole path, step by step, on the shipped example config: signs up
and is approved by the admin; picks the adjustable profile within their group's ranges (the
summary and the price change together); in JupyterLab inserts components from the panel,
runs one unfilled (the placeholder error says what to do), fills it with iris and sees the
rich result and the figures; saves, compares and restores versions of the notebook; wraps a
model and predicts on a DataFrame with warnings as errors; sees the running server and its
cost on the hub's home page; and is told in JupyterLab why the server stopped when the admin
stops it from the hub. Screenshots are kept at each step (test-artifacts/first-hour-*.png);
any console error or uncaught page error along the way fails the last step, listed in full.

The steps are separate tests sharing one hub and one browser context, in order; a step
whose predecessor failed is skipped rather than failing on a half-made session.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import nbformat
import pytest
from mlfactory.hub.platform_config import PACKAGED_CONFIG, load_platform_config
from mlfactory.spawner.pricing import hourly_price

from .conftest import (
    ADMIN_PASSWORD,
    ARTIFACTS,
    RealHub,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub, pytest.mark.browser]

USER = "sam"
PASSWORD = "sam-first-hour-2026"
NOTEBOOK = "first-hour.ipynb"
GIB = 2**30
# webpack's module federation: an extension built against another version of a shared
# package (a warning, as in test_lab_console)
VERSION_MISMATCH = re.compile(r"Unsatisfied version|No satisfying version", re.I)
MONEY = r"\d[\d,]*\.\d\d USD"
# what sam picks on the adjustable card: within data-science's 1–4 cores and 4–32 GiB, and
# no more cores than these test machines have
CORES, MEMORY_GIB = 2, 8
# JupyterLab notices a stop at its next poll of the server (every 10 s); the notice then
# waits up to 10 s for the platform's record of it
NOTICE_TIMEOUT_MS = 90_000
SERVER_START_MS = 150_000
KERNEL_MS = 120_000

SETUP_CELL = """\
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

iris = load_iris(as_frame=True)
X_iris = iris.data  # columns as scikit-learn names them: "sepal length (cm)", ...
y_iris = iris.target"""

MODEL_CELL = """\
import warnings

warnings.simplefilter("error")  # a feature-name warning would fail this cell
from mlfactory.model_api import Model

clf = LogisticRegression(max_iter=1000).fit(X_iris, y_iris)
model = Model(clf, task="classification", name="iris", labels=list(iris.target_names))
model.predict(X_iris.sample(5, random_state=0))"""


@dataclass
class Session:
    """Sam's browser session, the console's complaints, and which steps have passed.

    The browser itself logs an HTTP error status as a console error. Where a step causes
    one on purpose (a login refused while the account awaits approval; requests to the
    server after it was stopped), the step allows that message, and only that one: it is
    kept apart in ``expected``; anything else fails the last step."""

    hub: RealHub
    context: object
    page: object = None
    problems: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)
    passed: set[str] = field(default_factory=set)

    def watch(self, page, who: str) -> None:
        """Record ``page``'s console errors and uncaught errors."""

        def on_console(message) -> None:
            if message.type != "error" and not VERSION_MISMATCH.search(message.text):
                return
            where = (message.location or {}).get("url", "")
            line = f"{who} console.{message.type}: {message.text} [{where}]"
            if any(pattern.search(f"{message.text} [{where}]") for pattern in self.allowed):
                self.expected.append(line)
            else:
                self.problems.append(line)

        page.on("console", on_console)

        def on_error(error) -> None:
            line = f"{who} uncaught: {error}"
            if any(pattern.search(str(error)) for pattern in self.allowed):
                self.expected.append(line)
            else:
                self.problems.append(line)

        page.on("pageerror", on_error)

    @contextmanager
    def allowing(self, pattern: str) -> Iterator[None]:
        """Console errors matching ``pattern`` are expected inside this block."""
        compiled = re.compile(pattern)
        self.allowed.append(compiled)
        try:
            yield
        finally:
            self.allowed.remove(compiled)

    def after(self, step: str) -> None:
        """Skip this step unless ``step`` passed (the session would be half-made)."""
        if step not in self.passed:
            pytest.skip(f"the step {step!r} did not pass")


@pytest.fixture(scope="module")
def hub() -> Iterator[RealHub]:
    """The shipped example config, accounting every 2 s so the home page shows a cost
    soon. A newcomer is in no group, so the default group (data-science) applies: CPU
    profiles only, and cpu-large narrowed to 1–4 cores and 4–32 GiB."""
    config = example_config()
    config["accounting"]["interval"] = "2s"
    data, config_path = prepare_hub("first-hour", config)
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


@pytest.fixture(autouse=True)
def screenshot_on_failure(request) -> Iterator[None]:
    """A failed step leaves a picture of where it stopped."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed and "session" in request.fixturenames:
        page = request.getfixturevalue("session").page
        screenshot(page, f"first-hour-failed-{request.node.name}")
        # and the hub's and sam's server's logs as they were then
        logs = sorted(request.getfixturevalue("hub").data.rglob("*.log"))
        (ARTIFACTS / f"first-hour-failed-{request.node.name}.log").write_text(
            "\n".join(f"=== {p.name}\n{p.read_text(errors='replace')}" for p in logs)
        )


@pytest.fixture(scope="module")
def session(hub, browser) -> Iterator[Session]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    s = Session(hub=hub, context=context)
    s.page = context.new_page()
    s.watch(s.page, USER)
    yield s
    context.close()


# --- helpers -------------------------------------------------------------------------


def expected_price(cpu: float, memory_gib: float) -> str:
    """The price the pricing rules give cpu-large, as the card shows it."""
    config = load_platform_config(PACKAGED_CONFIG)
    price = hourly_price(
        config.profile("cpu-large"),
        cpu=cpu,
        memory=int(memory_gib * GIB),
        gpu=0,
        pricing=config.pricing,
    )
    return f"{round(price, 4):.2f} {config.platform.currency}/hour"


def dismiss_toasts(page) -> None:
    """JupyterLab's own news question would cover the screenshots."""
    no = page.locator(".Toastify__toast").get_by_role("button", name="No", exact=True)
    if no.count():
        no.first.click()


def cells(page):
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")


def cell_source(cell) -> str:
    return "\n".join(line.text_content() for line in cell.locator(".cm-line").all())


def set_source(page, cell, text: str) -> None:
    """Replace ``cell``'s text as typed (insert_text: no auto-indent or closing brackets)."""
    cell.locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(text)


def run_cell(page, cell) -> None:
    """Run ``cell`` in place (Ctrl+Enter) and wait until the kernel has answered it."""
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.text_content().strip()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+Enter")

    def answered() -> bool:
        now = prompt.text_content().strip()
        return bool(re.fullmatch(r"\[\d+\]:", now)) and now != before

    poll(
        answered,
        KERNEL_MS / 1000,
        lambda: f"the cell run, its prompt is {prompt.text_content()!r}",
    )


def fill(source: str, **values: str) -> str:
    """``source`` with each named input's line set to ``name = value``."""
    for name, value in values.items():
        source, n = re.subn(rf"^{name} = .*$", f"{name} = {value}", source, flags=re.M)
        assert n == 1, (name, source)
    return source


UNTITLED_GONE = (
    r"404 \(Not Found\) \[\S*/api/contents/Untitled\d*\.ipynb\?content=0"
    r"|^Invalid response: 404 Not Found$"
)


def save(page) -> None:
    """Ctrl+S; the first save of an untitled notebook asks for a name: give it one."""
    page.keyboard.press("Control+s")
    dirty = page.locator(".lm-TabBar-tab.jp-mod-dirty")
    rename = page.locator(".jp-Dialog").get_by_role("textbox", name="File name")
    poll(lambda: not dirty.count() or rename.count(), 60, "the notebook saved")
    if rename.count():
        rename.fill(NOTEBOOK)
        page.locator(".jp-Dialog .jp-mod-accept").click()
        dirty.wait_for(state="detached", timeout=60_000)
        page.locator(".lm-TabBar-tab", has_text=NOTEBOOK).wait_for()


def insert_component(page, name: str) -> None:
    """Find ``name`` in the Components panel, open its page, press Insert."""
    panel = page.locator('[data-testid="mlfactory-components"]')
    if not panel.is_visible():  # the sidebar tab toggles the panel
        page.locator('.jp-SideBar [data-id="mlfactory-components"]').click()
    panel.wait_for(state="visible")
    panel.get_by_test_id("components-search").fill(name)
    result = panel.locator(f'[data-testid="components-result"][data-name="{name}"]')
    result.wait_for(timeout=60_000)
    result.click()
    view = page.locator(f'[data-testid="components-page"][data-component="{name}"]')
    view.get_by_role("heading", name=name, level=3).wait_for(timeout=60_000)
    before = cells(page).count()
    view.get_by_test_id("components-insert").click()
    poll(lambda: cells(page).count() == before + 1, 60, f"{name}'s cell inserted")


def versions(panel):
    return panel.locator("li.mlfactory-HistoryVersion")


def expect_versions(panel, count: int) -> None:
    poll(
        lambda: versions(panel).count() == count,
        60,
        lambda: f"{count} versions listed, not {versions(panel).count()}",
    )


def save_version(page, panel, message: str, count: int) -> None:
    panel.get_by_label("Version message").fill(message)
    panel.get_by_role("button", name="Save version").click()
    expect_versions(panel, count)


# --- the steps, in order -------------------------------------------------------------


def test_01_sign_up_and_be_approved(session, browser):
    hub, page = session.hub, session.page
    page.goto(f"{hub.url}/hub/login")
    page.click("#mlfactory-signup-link")
    page.wait_for_url(re.compile(r".*/hub/signup"))
    page.fill("input[name=username]", USER)
    page.fill("input[name=email]", f"{USER}@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password_confirm]", PASSWORD)
    screenshot(page, "first-hour-01-signup")
    page.click("input[type=submit]")
    created = page.locator("#mlfactory-signup .alert-success")
    created.wait_for()
    assert "An administrator must approve it" in created.inner_text()

    # not yet: the login form says why (answered with 403, which the browser logs)
    refused = rf"^Failed to load resource: .* 403 \(Forbidden\) \[{re.escape(hub.url)}/hub/login"
    with session.allowing(refused):
        log_in(page, hub, USER, PASSWORD)
    assert "awaiting admin approval" in page.inner_text("body")

    # the admin approves sam on the hub's Sign-ups page
    admin = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    session.watch(admin, "admin")
    try:
        log_in(admin, hub, "admin", ADMIN_PASSWORD, next_url="/hub/home")
        admin.click("#mlfactory-signups-link")
        admin.wait_for_url(re.compile(r".*/hub/authorize"))
        row = admin.locator("tr").filter(
            has=admin.locator("td.mlfactory-pending-username", has_text=USER)
        )
        screenshot(admin, "first-hour-02-approval")
        row.get_by_role("button", name="Approve").click()
        approved = admin.locator("#mlfactory-authorize .alert-success")
        approved.filter(has_text=f"Approved {USER}.").wait_for()
    finally:
        admin.context.close()

    log_in(page, hub, USER, PASSWORD)
    assert "/hub/login" not in page.url, page.inner_text("body")
    session.passed.add("sign-up")


def test_02_pick_resources_within_my_limits(session):
    session.after("sign-up")
    hub, page = session.hub, session.page
    if "/hub/spawn" not in page.url:
        page.goto(f"{hub.url}/hub/spawn")
    page.locator('[data-testid="mlfactory-picker"]').wait_for(timeout=60_000)
    slugs = sorted(
        c.get_attribute("data-testid") for c in page.locator('[data-testid^="profile-card-"]').all()
    )
    # the default group's profiles: CPU only
    assert slugs == ["profile-card-cpu-large", "profile-card-cpu-medium", "profile-card-cpu-small"]

    large = page.locator('[data-testid="profile-card-cpu-large"]')
    ranges = large.locator('[data-testid="ranges-cpu-large"]').inner_text()
    # the group's 1–4 cores and 4–32 GiB, not the profile's own 1–8 and 4–64
    assert "You can choose 1–4 cores" in ranges, ranges
    assert "4–32 GiB memory" in ranges, ranges
    assert "–8 cores" not in large.inner_text() and "64 GiB" not in large.inner_text()

    large.click()
    cpu = page.locator('input[name="cpu--cpu-large"]')
    memory = page.locator('input[name="memory--cpu-large"]')
    assert (cpu.get_attribute("max"), memory.get_attribute("max")) == ("4", "32")
    price = page.locator('[data-testid="price-cpu-large"]')
    summary = page.locator('[data-testid="summary-cpu-large"]')

    def choose(field, value: int, cores: int, memory_gib: int) -> None:
        """Type ``value``: the summary and the price both follow, at once."""
        field.fill(str(value))  # typed: the page sees input events, as from a keyboard
        want = f"{cores} cores · {memory_gib} GiB memory · 50 GiB disk"
        page.wait_for_function(
            "([el, want]) => el.textContent.trim() === want",
            arg=[summary.element_handle(), want],
        )
        assert price.inner_text() == expected_price(cores, memory_gib)

    assert summary.inner_text() == "2 cores · 16 GiB memory · 50 GiB disk"  # the profile's
    assert price.inner_text() == expected_price(2, 16)
    choose(cpu, 3, 3, 16)
    choose(cpu, CORES, CORES, 16)
    choose(memory, MEMORY_GIB, CORES, MEMORY_GIB)
    screenshot(page, "first-hour-03-picker")

    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(rf".*/user/{USER}/lab.*"), timeout=SERVER_START_MS)
    info = page.request.get(f"{hub.url}/user/{USER}/mlfactory/api/info").json()
    assert info["profile"]["slug"] == "cpu-large"
    assert (info["profile"]["cpu"], info["profile"]["memory"]) == (CORES, f"{MEMORY_GIB}Gi")
    session.passed.add("picker")


def test_03_components_inserted_and_run(session):
    session.after("picker")
    page = session.page
    # a new notebook from the launcher, as a person makes one
    card = page.locator('.jp-LauncherCard[data-category="Notebook"]').first
    card.wait_for(timeout=90_000)
    card.click()
    cells(page).first.wait_for(timeout=60_000)
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=KERNEL_MS)
    dismiss_toasts(page)
    screenshot(page, "first-hour-04-lab")

    first = cells(page).nth(0)
    set_source(page, first, SETUP_CELL)
    run_cell(page, first)

    # train_classifier_cv from the panel, run as inserted: the error names what to fill
    insert_component(page, "train_classifier_cv")
    train = cells(page).nth(1)
    source = cell_source(train)
    assert 'use("train_classifier_cv@1.0.0")' in source, source
    run_cell(page, train)
    error = train.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    error.wait_for()
    assert "PlaceholderError" in error.inner_text()
    assert "X is required: replace `...` with your feature table" in error.inner_text()
    error.evaluate("el => el.scrollIntoView({block: 'end'})")  # the message ends the error
    screenshot(page, "first-hour-05-placeholder-error")

    # filled with iris: a rich result (summary and labelled tables), no stderr
    set_source(
        page,
        train,
        fill(source, X="X_iris", y="y_iris", estimator="LogisticRegression(max_iter=1000)"),
    )
    run_cell(page, train)
    result = train.locator(".jp-OutputArea-output .mlfactory-result")
    result.wait_for(timeout=KERNEL_MS)
    assert re.search(r"f1_macro \d\.\d{3} ± \d\.\d{3} over 5 folds", result.inner_text())
    assert result.locator("table").count() >= 1
    assert train.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0

    # plot_evaluation below it: its figures show inline
    insert_component(page, "plot_evaluation")
    plots = cells(page).nth(2)
    source = cell_source(plots)
    assert 'use("plot_evaluation@1.0.0")' in source, source
    set_source(
        page,
        plots,
        fill(
            source,
            y_true="y_iris",
            y_pred='result["model"].predict(X_iris)',
            y_score='result["model"].predict_proba(X_iris)',
            labels='list(result["model"].classes_)',
        ),
    )
    run_cell(page, plots)
    images = plots.locator(".jp-OutputArea-output img")
    poll(lambda: images.count() == 2, KERNEL_MS / 1000, "the confusion matrix and ROC figures")
    for image in images.all():
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert plots.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
    # The first save renames Untitled.ipynb. Under real-time collaboration JupyterLab's
    # collaborative drive may still ask for the old name once (jupyter-collaboration #313,
    # #510): a 404 for that path, and the same 404 uncaught. Only those, to this step's end.
    with session.allowing(UNTITLED_GONE):
        save(page)
        result.scroll_into_view_if_needed()
        screenshot(page, "first-hour-06-result")
        images.first.scroll_into_view_if_needed()
        screenshot(page, "first-hour-07-figures")
    session.passed.add("components")


def test_04_history_save_compare_restore(session):
    session.after("components")
    page = session.page
    panel = page.locator('[data-testid="mlfactory-history"]')
    if not panel.is_visible():
        page.locator('.jp-SideBar [data-id="mlfactory-history"]').click()
    panel.wait_for(state="visible")
    message = panel.get_by_label("Version message")
    start = panel.locator('[data-testid="mlfactory-history-init"]')
    poll(lambda: message.is_visible() or start.is_visible(), 60, "the History panel ready")
    if not message.is_visible():  # a new user's workspace is not tracked yet
        screenshot(page, "first-hour-08-history-start")
        start.click()
    message.wait_for(timeout=60_000)
    assert (
        panel.locator('[data-testid="mlfactory-history-notebook"]').inner_text().endswith(".ipynb")
    )
    save_version(page, panel, "iris baseline", 1)

    # a change to the first cell, saved as a second version
    first = cells(page).nth(0)
    first.locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+End")
    page.keyboard.insert_text("\nX_iris = X_iris[['petal length (cm)', 'petal width (cm)']]")
    save(page)
    save_version(page, panel, "petals only", 2)
    rows = versions(panel)
    assert "petals only" in rows.nth(0).inner_text() and "iris baseline" in rows.nth(1).inner_text()

    # compare them: nbdime shows the changed cell
    for i in (0, 1):
        rows.nth(i).locator("input[type=checkbox]").check()
    panel.locator('[data-testid="mlfactory-history-compare"]').click()
    diff = page.locator('[data-testid="mlfactory-history-diff"]')
    changed = diff.locator(".jp-Cell-diff:not(.jp-Diff-unchanged)")
    changed.first.wait_for(timeout=60_000)
    assert "petal width (cm)" in changed.first.inner_text()
    dismiss_toasts(page)
    screenshot(page, "first-hour-09-history-diff")
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="→")
    tab.locator(".lm-TabBar-tabCloseIcon").click()
    tab.wait_for(state="detached")

    # restore the baseline: the open notebook goes back to it
    rows.nth(1).get_by_role("button", name="Restore").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Restore version", exact=True).click()
    expect_versions(panel, 3)
    poll(
        lambda: "petal width (cm)" not in cell_source(cells(page).nth(0)),
        60,
        lambda: f"the baseline in the editor, not {cell_source(cells(page).nth(0))!r}",
    )
    (saved,) = list(session.hub.data.rglob(NOTEBOOK))  # in sam's home, on the server
    first_cell = nbformat.read(saved, as_version=4).cells[0].source
    assert "y_iris = iris.target" in first_cell and "petal width (cm)" not in first_cell
    assert "Restore" in rows.nth(0).inner_text()
    screenshot(page, "first-hour-10-history-restored")
    session.passed.add("history")


def test_05_model_wrapped_and_predicted_without_warning(session):
    session.after("history")
    page = session.page
    count = cells(page).count()
    cells(page).last.locator(".cm-content").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a new cell below, as from the keyboard
    poll(lambda: cells(page).count() == count + 1, 60, "a new cell")
    cell = cells(page).last
    set_source(page, cell, MODEL_CELL)
    run_cell(page, cell)
    table = cell.locator(".jp-OutputArea-output table.mlfactory-prediction")
    table.wait_for(timeout=KERNEL_MS)
    assert "iris (unversioned): classification" in table.locator("caption").inner_text()
    assert table.locator("tbody tr").count() == 5
    header = table.locator("thead").inner_text()
    assert "label" in header and "probabilities.setosa" in header
    assert cell.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
    save(page)
    cell.scroll_into_view_if_needed()
    screenshot(page, "first-hour-11-prediction")
    session.passed.add("model")


def test_06_home_page_shows_the_server_and_its_cost(session):
    session.after("picker")
    hub = session.hub
    home = session.context.new_page()
    session.watch(home, f"{USER} (home)")
    try:
        home.goto(f"{hub.url}/hub/home")
        row = home.locator('[data-testid="mlfactory-server"]')
        row.wait_for(timeout=60_000)
        assert row.count() == 1 and row.get_attribute("data-server-name") == ""
        assert row.locator('[data-testid="mlfactory-server-profile"]').inner_text() == "cpu-large"
        cost = row.locator('[data-testid="mlfactory-server-cost"]').inner_text()
        assert re.fullmatch(MONEY, cost), cost
        assert expected_price(CORES, MEMORY_GIB) in row.inner_text()
        screenshot(home, "first-hour-12-home")
    finally:
        home.close()
    session.passed.add("home")


def test_07_a_stop_from_the_hub_is_explained_in_lab(session):
    session.after("picker")
    hub, page = session.hub, session.page
    page.bring_to_front()
    # what the Hub Control Panel's "Stop Server" does: the hub's REST API, as the admin
    admin = HubClient(hub)
    # from now on JupyterLab's requests to the stopped server fail, and the browser logs
    # each failure (the hub answers 424 for a stopped server, and redirects websockets)
    server = re.escape(f"{hub.url}/user/{USER}/").replace("/user/", "/(hub/)?user/")
    gone = (
        rf"^Failed to load resource: .* \[{server}"
        rf"|^WebSocket connection to 'ws://{re.escape(hub.url.removeprefix('http://'))}/user/{USER}/"
    )
    session.allowed.append(re.compile(gone))  # to the end: the page keeps trying
    r = admin.delete(f"/hub/api/users/{USER}/server", timeout=120)
    assert r.status_code in (202, 204), r.text
    notice = page.locator('[data-testid="mlfactory-stop-notice"]')
    notice.wait_for(timeout=NOTICE_TIMEOUT_MS)
    text = notice.inner_text()
    assert "stopped from the hub (the Hub Control Panel), by you or an admin" in text, text
    assert "Server unavailable" not in page.inner_text("body")  # JupyterLab's generic one
    dialog = page.locator(".jp-Dialog")
    assert dialog.get_by_role("button", name="Start the server again").is_visible()
    screenshot(page, "first-hour-13-stopped-from-hub")
    poll(lambda: "" not in admin.servers(USER), 60, f"{USER}'s server gone from the hub")
    session.passed.add("stop")


def test_08_the_console_stayed_clean(session):
    """Reported whatever step stopped the walk, as long as there was a session."""
    session.after("sign-up")
    (ARTIFACTS / "first-hour-console.txt").write_text(
        "Problems:\n"
        + "".join(f"{p}\n" for p in session.problems)
        + "\nExpected (allowed by the step that caused them):\n"
        + "".join(f"{e}\n" for e in session.expected)
    )
    assert len(session.expected) >= 1  # the refused login, at least: the watch works
    if session.problems:
        pytest.fail(
            f"{len(session.problems)} console problem(s) in the first hour:\n"
            + "\n".join(session.problems),
            pytrace=False,
        )
