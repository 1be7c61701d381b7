/**
 * The Components panel in the left area: search the registry, read a
 * component's page, insert or drag its pinned snippet into a notebook, see the
 * sources' status, publish and review. Nothing is fetched until it is shown.
 *
 * The panel owns the tabs and the component page; searching is `SearchView`'s
 * (search.ts), the other tabs are `SourcesView` and `PublishView`.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { componentsAPI, type IComponentsAPI } from './api';
import { errorBox, h, isAbort, messageOf, setHidden } from './dom';
import { componentsIcon } from './icon';
import { pythonFence, renderMarkdown } from './markdown';
import { componentPage, pageToolbar, refOf } from './page';
import { PublishView } from './publish';
import { SearchView } from './search';
import { SourcesView } from './sources';
import type { IComponentDetail } from './types';

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

    this._search = new SearchView({
      api: this._api,
      open: (name, version) => this.openComponent(name, version),
      dragSource: this
    });
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
    return this._search.searchInput;
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
    this._search.focus();
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
    return this._search.search();
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._search.dispose();
    this._pageController?.abort();
    this._disposeRenderers();
    super.dispose();
  }

  protected override onBeforeShow(msg: Message): void {
    super.onBeforeShow(msg);
    this._loadTab(this._tab);
  }

  protected override onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (this._tab === 'browse' && !this._detail) {
      this._search.searchInput.focus();
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

  // -- browse: the search, or a component's page in its place ----------------

  private _buildBrowse(): HTMLElement {
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
    return h('div', {}, this._search.node, this._page);
  }

  // -- component page ---------------------------------------------------------

  private _showPage(show: boolean): void {
    if (show === this._page.hidden) {
      // The panel scrolls as a whole: a page starts at its top, the list
      // comes back where it was.
      if (show) {
        this._listScroll = this.node.scrollTop;
      }
      setHidden(this._search.node, show);
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
    this._search.setCategory(category);
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
  private readonly _search: SearchView;
  private readonly _sources: SourcesView;
  private readonly _publish: PublishView;
  private _tab: ComponentsTab = 'browse';

  private _searched = false;

  private _page!: HTMLElement;
  private _pageController: AbortController | null = null;
  private _detail: IComponentDetail | null = null;
  private _insertButton: HTMLButtonElement | null = null;
  private _listScroll = 0;
  private _renderers: Widget[] = [];
}
