/**
 * The search part of the Browse view: the query box, the filters (filled
 * from the answer's facets), the result list with its keyboard moves and
 * press-to-drag, and "Load more". Opening a result is the panel's job.
 */
import type { IComponentsAPI } from './api';
import {
  button,
  errorBox,
  h,
  isAbort,
  setHidden,
  sourceBadge,
  stabilityBadge
} from './dom';
import { PressToDrag } from './drag';
import { sourceOptionLabel } from './labels';
import { refOf } from './page';
import {
  STABILITIES,
  type IComponentSummary,
  type ISearchResult
} from './types';

/** Results asked for per page ("Load more" asks for the next). */
export const PAGE_SIZE = 50;
/** Wait this long after the last keystroke before searching. */
export const SEARCH_DELAY_MS = 150;

export namespace SearchView {
  export interface IOptions {
    api: IComponentsAPI;
    /** Open the page of a result. */
    open: (name: string, version: string) => Promise<void>;
    /** The source of a drag (the panel). */
    dragSource: { isDisposed: boolean };
  }
}

export class SearchView {
  readonly node: HTMLElement;
  readonly searchInput: HTMLInputElement;

  constructor(options: SearchView.IOptions) {
    this._api = options.api;
    this._open = options.open;
    this._dragSource = options.dragSource;

    this.searchInput = h('input', {
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
    this.searchInput.addEventListener('input', () => {
      window.clearTimeout(this._debounce);
      this._debounce = window.setTimeout(
        () => void this._search(false),
        SEARCH_DELAY_MS
      );
    });
    this.searchInput.addEventListener('keydown', event => {
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

    this.node = h(
      'div',
      { className: 'mlfactory-Components-browse' },
      this.searchInput,
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
  }

  /** Run the search now (the debounce skipped). */
  search(): Promise<void> {
    window.clearTimeout(this._debounce);
    return this._search(false);
  }

  /** Focus the result last moved to, else the search box. */
  focus(): void {
    const item = this._items[this._focused] ?? null;
    (item ?? this.searchInput).focus();
  }

  /** Filter by `category` (even one no result has yet), with an empty query. */
  setCategory(category: string): void {
    if (![...this._category.options].some(o => o.value === category)) {
      this._category.append(
        h('option', { text: category, attrs: { value: category } })
      );
    }
    this._category.value = category;
    this.searchInput.value = '';
  }

  dispose(): void {
    window.clearTimeout(this._debounce);
    this._controller?.abort();
    this._drag.end();
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
    this._controller?.abort();
    const controller = new AbortController();
    this._controller = controller;
    const offset = more ? this._results.length : 0;
    // More of the list on show, even if the box already holds a newer query.
    const q = more
      ? (this._list.dataset.query ?? '')
      : this.searchInput.value.trim();
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
      if (this._controller === controller) {
        this._controller = null;
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
          label: sourceOptionLabel(f.name, f.kind, f.count)
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
        this.searchInput.focus();
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
    return this._open(c.name, c.version);
  }

  // -- drag a result onto a notebook ------------------------------------------

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
      source: this._dragSource,
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

  private readonly _api: IComponentsAPI;
  private readonly _open: SearchView.IOptions['open'];
  private readonly _dragSource: { isDisposed: boolean };
  private readonly _category: HTMLSelectElement;
  private readonly _stability: HTMLSelectElement;
  private readonly _source: HTMLSelectElement;
  private readonly _status: HTMLElement;
  private readonly _list: HTMLUListElement;
  private readonly _more: HTMLButtonElement;
  private _debounce = 0;
  private _controller: AbortController | null = null;
  private _results: IComponentSummary[] = [];
  private _items: HTMLLIElement[] = [];
  private _focused = -1;
  private _total = 0;

  private readonly _drag = new PressToDrag();
  private readonly _snippets = new Map<string, Promise<string>>();
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
