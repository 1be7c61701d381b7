/**
 * The Components panel in the left area: search the registry, read a
 * component's page, insert or drag its pinned snippet into a notebook, see the
 * sources' status, publish and review. Nothing is fetched until it is shown.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { componentsAPI, type IComponentsAPI } from './api';
import {
  button,
  errorBox,
  h,
  isAbort,
  messageOf,
  setHidden,
  sourceBadge,
  stabilityBadge
} from './dom';
import { PressToDrag } from './drag';
import { componentsIcon } from './icon';
import { pythonFence, renderMarkdown } from './markdown';
import { componentPage, pageToolbar, refOf } from './page';
import { PublishView } from './publish';
import { SourcesView } from './sources';
import {
  STABILITIES,
  type IComponentDetail,
  type IComponentSummary,
  type ISearchResult
} from './types';

/** Results asked for per page ("Load more" asks for the next). */
export const PAGE_SIZE = 50;
/** Wait this long after the last keystroke before searching. */
export const SEARCH_DELAY_MS = 150;

export type ComponentsTab = 'browse' | 'sources' | 'publish';

export namespace ComponentsPanel {
  export interface IOptions {
    /** Where the panel gets its data; defaults to the server extension. */
    api?: IComponentsAPI;
    /** Renders READMEs and examples; plain text without it. */
    rendermime?: IRenderMimeRegistry | null;
    /** Why a snippet cannot be inserted now (shown as a tooltip), or null. */
    insertBlocker: () => string | null;
    /** Insert the snippet of the exact reference `name@x.y.z`. */
    insert: (ref: string) => Promise<void>;
  }
}

export class ComponentsPanel extends Widget {
  constructor(options: ComponentsPanel.IOptions) {
    super();
    this._api = options.api ?? componentsAPI;
    this._rendermime = options.rendermime ?? null;
    this._insertBlocker = options.insertBlocker;
    this._insert = options.insert;

    this.id = 'mlfactory-components';
    this.addClass('mlfactory-Components');
    this.node.dataset.testid = 'mlfactory-components';
    this.title.icon = componentsIcon;
    this.title.caption = 'Components';

    const header = h(
      'header',
      { className: 'mlfactory-Components-header' },
      h('h2', { text: 'Components' })
    );
    const tabs = h('div', {
      className: 'mlfactory-Components-tabs',
      attrs: { role: 'tablist', 'aria-label': 'Components views' }
    });
    for (const [tab, label] of [
      ['browse', 'Browse'],
      ['sources', 'Sources'],
      ['publish', 'Publish']
    ] as [ComponentsTab, string][]) {
      const tabButton = h('button', {
        className: 'mlfactory-Components-tab',
        text: label,
        testid: `components-tab-${tab}`,
        attrs: {
          type: 'button',
          role: 'tab',
          id: `mlfactory-components-tab-${tab}`,
          'aria-controls': `mlfactory-components-view-${tab}`
        }
      });
      tabButton.addEventListener('click', () => this.selectTab(tab));
      tabButton.addEventListener('keydown', event => this._onTabKey(event));
      this._tabButtons.set(tab, tabButton);
      tabs.append(tabButton);
    }
    header.append(tabs);

    this._sources = new SourcesView(this._api);
    this._publish = new PublishView(this._api);
    this._views.set('browse', this._buildBrowse());
    this._views.set('sources', this._sources.node);
    this._views.set('publish', this._publish.node);
    for (const [tab, view] of this._views) {
      view.id = `mlfactory-components-view-${tab}`;
      view.setAttribute('role', 'tabpanel');
      view.setAttribute('aria-labelledby', `mlfactory-components-tab-${tab}`);
      view.classList.add('mlfactory-Components-view');
    }
    this.node.append(header, ...this._views.values());
    this.selectTab('browse');
  }

  /** The reference of the component page on show, if any (`name@x.y.z`). */
  get currentRef(): string | null {
    return this._detail ? refOf(this._detail) : null;
  }

  get searchInput(): HTMLInputElement {
    return this._searchInput;
  }

  selectTab(tab: ComponentsTab): void {
    this._tab = tab;
    for (const [name, tabButton] of this._tabButtons) {
      const selected = name === tab;
      tabButton.setAttribute('aria-selected', String(selected));
      tabButton.tabIndex = selected ? 0 : -1;
      tabButton.classList.toggle('jp-mod-current', selected);
      setHidden(this._views.get(name)!, !selected);
    }
    if (!this.isVisible) {
      return;
    }
    this._loadTab(tab);
  }

  /** Show the page of `name` (its default version, or `version`). */
  async openComponent(name: string, version?: string): Promise<void> {
    const focused = document.activeElement;
    const hadFocus = this.node.contains(focused);
    // Switching versions keeps focus on the version picker.
    const refocus =
      focused instanceof HTMLElement && this._page.contains(focused)
        ? focused.dataset.testid
        : undefined;
    this.selectTab('browse');
    this._pageController?.abort();
    const controller = new AbortController();
    this._pageController = controller;
    this._showPage(true);
    this._disposeRenderers();
    this._detail = null;
    this._page.replaceChildren(
      this._pageToolbar(),
      h('p', { className: 'mlfactory-loading', text: `Loading ${name}…` })
    );
    try {
      const detail = await this._api.item(name, version, controller.signal);
      if (controller.signal.aborted) {
        return;
      }
      this._detail = detail;
      this._renderPage(detail);
      if (hadFocus) {
        // Keyboard users land on the page they opened (Escape goes back).
        const again = refocus
          ? this._page.querySelector<HTMLElement>(`[data-testid="${refocus}"]`)
          : null;
        (again ?? this._page.querySelector<HTMLElement>('h3'))?.focus();
      }
    } catch (error) {
      if (isAbort(error) || controller.signal.aborted) {
        return;
      }
      this._page.replaceChildren(
        this._pageToolbar(),
        errorBox(error, `Could not load the component ${name}.`)
      );
    } finally {
      if (this._pageController === controller) {
        this._pageController = null;
      }
    }
  }

  /** Back from a component page to the results, focus where it was. */
  closeComponent(): void {
    this._pageController?.abort();
    this._disposeRenderers();
    this._detail = null;
    this._showPage(false);
    const item = this._items[this._focused] ?? null;
    (item ?? this._searchInput).focus();
  }

  /** Re-check whether Insert is possible (the active notebook changed). */
  updateInsertState(): void {
    if (!this._insertButton || !this._detail) {
      return;
    }
    const blocker = this._insertBlocker();
    this._insertButton.disabled = blocker !== null;
    this._insertButton.title =
      blocker ?? `Insert ${refOf(this._detail)} below the active cell`;
  }

  /** Submit a component folder for review and show the Publish view. */
  publish(path: string): Promise<unknown> {
    this.selectTab('publish');
    return this._publish.publish(path);
  }

  /** Run the search now (the debounce skipped). */
  search(): Promise<void> {
    window.clearTimeout(this._debounce);
    return this._search(false);
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearTimeout(this._debounce);
    this._searchController?.abort();
    this._pageController?.abort();
    this._disposeRenderers();
    this._drag.end();
    super.dispose();
  }

  protected override onBeforeShow(msg: Message): void {
    super.onBeforeShow(msg);
    this._loadTab(this._tab);
  }

  protected override onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (this._tab === 'browse' && !this._detail) {
      this._searchInput.focus();
    }
  }

  private _loadTab(tab: ComponentsTab): void {
    if (tab === 'browse' && !this._searched) {
      this._searched = true;
      void this.search();
    } else if (tab === 'sources') {
      void this._sources.load();
    } else if (tab === 'publish') {
      void this._publish.load();
    }
  }

  private _onTabKey(event: KeyboardEvent): void {
    const order: ComponentsTab[] = ['browse', 'sources', 'publish'];
    const step =
      event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (!step) {
      return;
    }
    event.preventDefault();
    const next =
      order[(order.indexOf(this._tab) + step + order.length) % order.length];
    this.selectTab(next);
    this._tabButtons.get(next)!.focus();
  }

  // -- browse -----------------------------------------------------------------

  private _buildBrowse(): HTMLElement {
    this._searchInput = h('input', {
      className: 'jp-mod-styled mlfactory-Components-search',
      testid: 'components-search',
      attrs: {
        type: 'search',
        placeholder: 'Search components',
        'aria-label': 'Search components',
        spellcheck: 'false',
        autocomplete: 'off'
      }
    });
    this._searchInput.addEventListener('input', () => {
      window.clearTimeout(this._debounce);
      this._debounce = window.setTimeout(
        () => void this._search(false),
        SEARCH_DELAY_MS
      );
    });
    this._searchInput.addEventListener('keydown', event => {
      if (event.key === 'ArrowDown' && this._items.length) {
        event.preventDefault();
        this._focusResult(0);
      } else if (event.key === 'Enter') {
        event.preventDefault();
        void this.search();
      }
    });

    this._category = this._filterSelect('category', 'Category');
    this._stability = this._filterSelect('stability', 'Stability');
    this._source = this._filterSelect('source', 'Source');
    fillSelect(
      this._stability,
      'Stability',
      STABILITIES.map(name => ({ value: name, label: name }))
    );

    this._status = h('div', {
      className: 'mlfactory-Components-status',
      testid: 'components-status',
      attrs: { 'aria-live': 'polite' }
    });
    this._list = h('ul', {
      className: 'mlfactory-Components-results',
      testid: 'components-results',
      attrs: { role: 'listbox', 'aria-label': 'Components' }
    });
    this._list.addEventListener('click', event => this._onListClick(event));
    this._list.addEventListener('keydown', event => this._onListKey(event));
    this._list.addEventListener('pointerdown', event =>
      this._onPointerDown(event)
    );
    this._more = button('Load more', () => void this._search(true), {
      className: 'mlfactory-Components-more',
      testid: 'components-more'
    });
    setHidden(this._more, true);

    this._browse = h(
      'div',
      { className: 'mlfactory-Components-browse' },
      this._searchInput,
      h(
        'div',
        { className: 'mlfactory-Components-filters' },
        this._category,
        this._stability,
        this._source
      ),
      this._status,
      this._list,
      this._more
    );
    this._page = h('div', {
      className: 'mlfactory-Components-page',
      testid: 'components-page'
    });
    setHidden(this._page, true);
    this._page.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        event.preventDefault();
        this.closeComponent();
      }
    });
    return h('div', {}, this._browse, this._page);
  }

  private _filterSelect(name: string, label: string): HTMLSelectElement {
    const select = h('select', {
      className: 'jp-mod-styled mlfactory-Components-filter',
      testid: `components-filter-${name}`,
      attrs: { 'aria-label': `Filter by ${name}` }
    });
    select.append(h('option', { text: label, attrs: { value: '' } }));
    select.addEventListener('change', () => void this.search());
    return select;
  }

  private async _search(more: boolean): Promise<void> {
    this._searchController?.abort();
    const controller = new AbortController();
    this._searchController = controller;
    const offset = more ? this._results.length : 0;
    // More of the list on show, even if the box already holds a newer query.
    const q = more
      ? (this._list.dataset.query ?? '')
      : this._searchInput.value.trim();
    if (!more) {
      this._status.textContent = 'Searching…';
    }
    this._list.setAttribute('aria-busy', 'true');
    this._more.disabled = true;
    try {
      const result = await this._api.search(
        {
          q,
          category: this._category.value,
          stability: this._stability.value,
          source: this._source.value,
          limit: PAGE_SIZE,
          offset
        },
        controller.signal
      );
      if (controller.signal.aborted) {
        return;
      }
      this._showResults(result, more, q);
    } catch (error) {
      if (isAbort(error) || controller.signal.aborted) {
        return;
      }
      this._status.replaceChildren(
        errorBox(error, 'Could not search the component registry.'),
        button('Retry', () => void this._search(more), { kind: 'reject' })
      );
    } finally {
      if (this._searchController === controller) {
        this._searchController = null;
        this._more.disabled = false;
        this._list.setAttribute('aria-busy', 'false');
      }
    }
  }

  private _showResults(result: ISearchResult, more: boolean, q: string): void {
    if (!more) {
      this._results = [];
      this._items = [];
      this._focused = -1;
      this._list.replaceChildren();
      this._list.scrollTop = 0;
    }
    for (const component of result.results) {
      const item = this._renderResult(component, this._results.length);
      this._results.push(component);
      this._items.push(item);
      this._list.append(item);
    }
    if (this._focused < 0 && this._items.length) {
      this._items[0].tabIndex = 0;
    }
    this._total = result.total;
    setHidden(this._more, this._results.length >= result.total);

    const facets = result.facets;
    if (facets) {
      fillSelect(
        this._category,
        'Category',
        facets.categories.map(f => ({
          value: f.name,
          label: `${f.name} (${f.count})`
        }))
      );
      if (facets.stabilities.length) {
        fillSelect(
          this._stability,
          'Stability',
          facets.stabilities.map(f => ({
            value: f.name,
            label: `${f.name} (${f.count})`
          }))
        );
      }
      fillSelect(
        this._source,
        'Source',
        facets.sources.map(f => ({
          value: f.name,
          label: `${f.name} · ${f.kind} (${f.count})`
        }))
      );
    }

    // Which query the list answers (the box may already hold a newer one).
    this._list.dataset.query = q;
    this._status.textContent =
      this._total === 0
        ? q
          ? `No components match “${q}”.`
          : 'No components.'
        : `${this._total} component${this._total === 1 ? '' : 's'}` +
          (this._results.length < this._total
            ? ` · showing ${this._results.length}`
            : '');
  }

  private _renderResult(c: IComponentSummary, index: number): HTMLLIElement {
    const item = h(
      'li',
      {
        className: 'mlfactory-Components-result',
        testid: 'components-result',
        title: `${c.name}@${c.version}: drag onto a notebook to insert`,
        attrs: {
          role: 'option',
          tabindex: '-1',
          'aria-selected': 'false',
          'data-index': String(index),
          'data-name': c.name
        }
      },
      h(
        'div',
        { className: 'mlfactory-Components-resultHeader' },
        h('span', { className: 'mlfactory-Components-name', text: c.name }),
        h('span', {
          className: 'mlfactory-Components-version',
          text: c.version
        }),
        stabilityBadge(c.stability),
        sourceBadge(c.source, c.source_kind)
      ),
      h('div', { className: 'mlfactory-Components-summary', text: c.summary })
    );
    return item;
  }

  private _indexOf(target: EventTarget | null): number {
    const item =
      target instanceof Element
        ? target.closest<HTMLElement>('.mlfactory-Components-result')
        : null;
    return item ? Number(item.dataset.index) : -1;
  }

  private _onListClick(event: MouseEvent): void {
    if (this._drag.swallowClick()) {
      return;
    }
    const index = this._indexOf(event.target);
    if (index >= 0) {
      this._focusResult(index);
      void this._openResult(index);
    }
  }

  private _onListKey(event: KeyboardEvent): void {
    const index = this._indexOf(event.target);
    if (index < 0) {
      return;
    }
    const last = this._items.length - 1;
    const moves: Record<string, number> = {
      ArrowDown: Math.min(index + 1, last),
      ArrowUp: index - 1,
      Home: 0,
      End: last,
      PageDown: Math.min(index + 10, last),
      PageUp: Math.max(index - 10, 0)
    };
    if (event.key in moves) {
      event.preventDefault();
      const next = moves[event.key];
      if (next < 0) {
        this._searchInput.focus();
      } else {
        this._focusResult(next);
      }
    } else if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      void this._openResult(index);
    }
  }

  private _focusResult(index: number): void {
    this._items.forEach((item, i) => {
      item.tabIndex = i === index ? 0 : -1;
      item.setAttribute('aria-selected', String(i === index));
    });
    this._focused = index;
    const item = this._items[index];
    item.focus();
    item.scrollIntoView?.({ block: 'nearest' });
  }

  private _openResult(index: number): Promise<void> {
    const c = this._results[index];
    return this.openComponent(c.name, c.version);
  }

  // -- drag a result onto a notebook --------------------------------------------

  private _onPointerDown(event: PointerEvent): void {
    const index = this._indexOf(event.target);
    if (event.button !== 0 || index < 0) {
      return;
    }
    const ref = refOf(this._results[index]);
    this._drag.press({
      event,
      label: ref,
      code: this._snippet(ref),
      source: this,
      onError: error =>
        this._status.replaceChildren(
          errorBox(error, `Could not get the snippet of ${ref}.`)
        )
    });
  }

  private _snippet(ref: string): Promise<string> {
    let code = this._snippets.get(ref);
    if (!code) {
      code = this._api.snippet(ref).then(s => s.code);
      code.catch(() => this._snippets.delete(ref));
      this._snippets.set(ref, code);
    }
    return code;
  }

  // -- component page ---------------------------------------------------------

  private _showPage(show: boolean): void {
    if (show === this._page.hidden) {
      // The panel scrolls as a whole: a page starts at its top, the list
      // comes back where it was.
      if (show) {
        this._listScroll = this.node.scrollTop;
      }
      setHidden(this._browse, show);
      setHidden(this._page, !show);
      this.node.scrollTop = show ? 0 : this._listScroll;
    }
  }

  private _pageToolbar(): HTMLElement {
    return pageToolbar(() => this.closeComponent());
  }

  private _renderPage(d: IComponentDetail): void {
    const page = componentPage(d, {
      back: () => this.closeComponent(),
      openVersion: version => void this.openComponent(d.name, version),
      browseCategory: category => this._browseCategory(category),
      insert: (ref, message) => void this._onInsert(ref, message)
    });
    this._insertButton = page.insertButton;
    this.updateInsertState();
    const { example, readme } = page;
    this._page.replaceChildren(...page.nodes);

    // Renderers need their host in the document.
    const pending: Promise<Widget | null>[] = [];
    if (d.example) {
      pending.push(
        renderMarkdown(this._rendermime, pythonFence(d.example), example)
      );
    }
    if (d.readme) {
      pending.push(renderMarkdown(this._rendermime, d.readme, readme));
    }
    for (const rendered of pending) {
      void rendered.then(widget => {
        if (widget && this._detail !== d) {
          widget.dispose();
        } else if (widget) {
          this._renderers.push(widget);
        }
      });
    }
  }

  private async _onInsert(ref: string, message: HTMLElement): Promise<void> {
    const insertButton = this._insertButton;
    if (!insertButton) {
      return;
    }
    insertButton.disabled = true;
    message.replaceChildren();
    try {
      await this._insert(ref);
      message.textContent = `Inserted ${ref}.`;
    } catch (error) {
      message.replaceChildren(
        errorBox(error, `Could not insert ${ref}: ${messageOf(error)}`)
      );
    } finally {
      this.updateInsertState();
    }
  }

  private _browseCategory(category: string): void {
    if (![...this._category.options].some(o => o.value === category)) {
      this._category.append(
        h('option', { text: category, attrs: { value: category } })
      );
    }
    this._category.value = category;
    this._searchInput.value = '';
    this.closeComponent();
    void this.search();
  }

  private _disposeRenderers(): void {
    for (const widget of this._renderers) {
      widget.dispose();
    }
    this._renderers = [];
  }

  private readonly _api: IComponentsAPI;
  private readonly _rendermime: IRenderMimeRegistry | null;
  private readonly _insertBlocker: () => string | null;
  private readonly _insert: (ref: string) => Promise<void>;
  private readonly _tabButtons = new Map<ComponentsTab, HTMLButtonElement>();
  private readonly _views = new Map<ComponentsTab, HTMLElement>();
  private readonly _sources: SourcesView;
  private readonly _publish: PublishView;
  private _tab: ComponentsTab = 'browse';

  private _browse!: HTMLElement;
  private _searchInput!: HTMLInputElement;
  private _category!: HTMLSelectElement;
  private _stability!: HTMLSelectElement;
  private _source!: HTMLSelectElement;
  private _status!: HTMLElement;
  private _list!: HTMLUListElement;
  private _more!: HTMLButtonElement;
  private _searched = false;
  private _debounce = 0;
  private _searchController: AbortController | null = null;
  private _results: IComponentSummary[] = [];
  private _items: HTMLLIElement[] = [];
  private _focused = -1;
  private _total = 0;

  private readonly _drag = new PressToDrag();
  private readonly _snippets = new Map<string, Promise<string>>();

  private _page!: HTMLElement;
  private _pageController: AbortController | null = null;
  private _detail: IComponentDetail | null = null;
  private _insertButton: HTMLButtonElement | null = null;
  private _listScroll = 0;
  private _renderers: Widget[] = [];
}

/** Replace a select's options, keeping the current choice (even if gone). */
function fillSelect(
  select: HTMLSelectElement,
  allLabel: string,
  options: { value: string; label: string }[]
): void {
  const current = select.value;
  const nodes = [h('option', { text: allLabel, attrs: { value: '' } })];
  for (const option of options) {
    nodes.push(
      h('option', { text: option.label, attrs: { value: option.value } })
    );
  }
  if (current && !options.some(o => o.value === current)) {
    nodes.push(
      h('option', { text: `${current} (0)`, attrs: { value: current } })
    );
  }
  select.replaceChildren(...nodes);
  select.value = current;
}
