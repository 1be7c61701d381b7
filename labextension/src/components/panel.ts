/**
 * The Components panel in the left area: search the registry, open a
 * component's page (in the main area, see pageView.ts), drag its pinned
 * snippet into a notebook, see the sources' status, publish and review.
 * Nothing is fetched until it is shown.
 *
 * The panel owns the tabs; searching is `SearchView`'s (search.ts), the other
 * tabs are `SourcesView` and `PublishView`.
 */
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { componentsAPI, type IComponentsAPI } from './api';
import { h, setHidden } from './dom';
import { componentsIcon } from './icon';
import { PublishView } from './publish';
import { SearchView } from './search';
import { SourcesView } from './sources';

export type ComponentsTab = 'browse' | 'sources' | 'publish';

export namespace ComponentsPanel {
  export interface IOptions {
    /** Where the panel gets its data; defaults to the server extension. */
    api?: IComponentsAPI;
    /** Open the page of `name` (at `version`) in the main area. */
    open: (name: string, version?: string) => Promise<void>;
  }
}

export class ComponentsPanel extends Widget {
  constructor(options: ComponentsPanel.IOptions) {
    super();
    this._api = options.api ?? componentsAPI;
    this._open = options.open;

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
      open: (name, version) => this._open(name, version),
      dragSource: this
    });
    this._sources = new SourcesView(this._api);
    this._publish = new PublishView(this._api);
    this._views.set('browse', this._search.node);
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

  /** Show the components of `category` (from a page's category chip). */
  browseCategory(category: string): void {
    this._search.setCategory(category);
    this.selectTab('browse');
    void this.search();
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
    super.dispose();
  }

  protected override onBeforeShow(msg: Message): void {
    super.onBeforeShow(msg);
    this._loadTab(this._tab);
  }

  protected override onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (this._tab === 'browse') {
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

  private readonly _api: IComponentsAPI;
  private readonly _open: ComponentsPanel.IOptions['open'];
  private readonly _tabButtons = new Map<ComponentsTab, HTMLButtonElement>();
  private readonly _views = new Map<ComponentsTab, HTMLElement>();
  private readonly _search: SearchView;
  private readonly _sources: SourcesView;
  private readonly _publish: PublishView;
  private _tab: ComponentsTab = 'browse';

  private _searched = false;
}
