/**
 * The Sources view: where components come from, whether each source loaded,
 * and the component folders it skipped as invalid (file, key, message).
 */
import type { IComponentsAPI } from './api';
import { badge, button, errorBox, h, setHidden } from './dom';
import type { ISourceError, ISources } from './types';

/** Badge colours by source status. */
const STATUS_VARIANT: Record<string, string> = {
  ok: 'stable',
  fetching: 'beta',
  'not-fetched': 'experimental',
  error: 'deprecated'
};

export class SourcesView {
  readonly node: HTMLElement;

  constructor(api: IComponentsAPI) {
    this._api = api;
    this._refresh = button('Refresh sources', () => void this.refresh(), {
      testid: 'components-sources-refresh',
      title: 'Fetch every source again and rebuild the catalog (owner only)'
    });
    setHidden(this._refresh, true);
    this._body = h('div', { attrs: { 'aria-live': 'polite' } });
    this.node = h(
      'div',
      {
        className: 'mlfactory-Components-sources',
        testid: 'components-sources'
      },
      h(
        'div',
        { className: 'mlfactory-Components-viewToolbar' },
        this._refresh
      ),
      this._body
    );
  }

  /** Fetch the sources' status (again). */
  async load(): Promise<void> {
    if (this._loading) {
      return;
    }
    this._loading = true;
    if (!this._loaded) {
      this._body.replaceChildren(
        h('p', { className: 'mlfactory-loading', text: 'Loading…' })
      );
    }
    // Only the server's owner may refresh; the server checks it again.
    this._api.isOwner().then(
      owner => setHidden(this._refresh, !owner),
      () => setHidden(this._refresh, false)
    );
    try {
      this._render(await this._api.sources());
      this._loaded = true;
    } catch (error) {
      this._body.replaceChildren(
        errorBox(error, 'Could not load the component sources.')
      );
    } finally {
      this._loading = false;
    }
  }

  async refresh(): Promise<void> {
    this._refresh.disabled = true;
    try {
      await this._api.refreshSources();
      await this.load();
    } catch (error) {
      this._body.prepend(errorBox(error, 'Could not refresh the sources.'));
    } finally {
      this._refresh.disabled = false;
    }
  }

  private _render(data: ISources): void {
    const sources = data.sources ?? [];
    const errors = data.errors ?? [];
    const list = sources.length
      ? h(
          'ul',
          { className: 'mlfactory-Components-sourceList' },
          ...sources.map(s =>
            h(
              'li',
              { testid: 'components-source-item' },
              h(
                'div',
                { className: 'mlfactory-Components-resultHeader' },
                h('span', {
                  className: 'mlfactory-Components-name',
                  text: s.name
                }),
                h('span', {
                  className: 'mlfactory-Components-muted',
                  text: s.kind
                }),
                badge(s.status, STATUS_VARIANT[s.status] ?? 'beta'),
                h('span', {
                  className: 'mlfactory-Components-muted',
                  text: `${s.count} component${s.count === 1 ? '' : 's'}`
                })
              ),
              s.url
                ? h('div', {
                    className: 'mlfactory-Components-muted',
                    text: s.ref ? `${s.url} @ ${s.ref}` : s.url
                  })
                : null,
              s.fetched_at
                ? h('div', {
                    className: 'mlfactory-Components-muted',
                    text: `Fetched ${s.fetched_at}`
                  })
                : null,
              s.error
                ? h('div', {
                    className: 'mlfactory-Components-errorText',
                    text: s.error
                  })
                : null
            )
          )
        )
      : h('p', { text: 'No sources configured.' });

    // One entry per invalid file, listing what is wrong with it.
    const byFile = new Map<string, ISourceError[]>();
    for (const e of errors) {
      const key = `${e.source}\u0000${e.file}`;
      byFile.set(key, [...(byFile.get(key) ?? []), e]);
    }
    const invalid = byFile.size
      ? h(
          'ul',
          {
            className: 'mlfactory-Components-invalid',
            testid: 'components-invalid'
          },
          ...[...byFile.values()].map(group =>
            h(
              'li',
              {},
              h(
                'div',
                {},
                h('strong', { text: group[0].source }),
                ' · ',
                h('code', { text: group[0].file })
              ),
              h(
                'ul',
                {},
                ...group.map(e =>
                  h(
                    'li',
                    {},
                    e.key ? h('code', { text: e.key }) : null,
                    e.key ? ': ' : '',
                    e.message
                  )
                )
              )
            )
          )
        )
      : h('p', { text: 'Every component is valid.' });
    this._body.replaceChildren(
      list,
      h('h4', {
        text: `Invalid components (${byFile.size} file${byFile.size === 1 ? '' : 's'})`
      }),
      invalid
    );
  }

  private readonly _api: IComponentsAPI;
  private readonly _body: HTMLElement;
  private readonly _refresh: HTMLButtonElement;
  private _loaded = false;
  private _loading = false;
}
