/**
 * The Models panel in the left area: every model in the registry with its
 * versions (who published each, when, from which notebook and History
 * version, serving or stopped), its aliases (who moved them, when), and
 * snippets to call it. The owner (or a group granted it) moves aliases,
 * stops and resumes versions; the owner chooses the groups. Fetched when
 * shown and on Refresh, never at start-up.
 */
import { Clipboard } from '@jupyterlab/apputils';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { visitedOwner, visitingLine } from '../handler';
import { hubBase, hubFacts } from '../hub';
import { el } from '../sharing/dom';
import {
  errorText,
  getModel,
  listModels,
  modelsChanged,
  moveAlias,
  setGrants,
  setServing
} from './api';
import { modelsIcon } from './icon';
import {
  ALIAS_PATTERN,
  aliasLine,
  curlSnippet,
  type IEndpoint,
  type IRegisteredModel,
  type IVersion,
  modelsBase,
  parseLabels,
  provenanceLine,
  sdkSnippet,
  tritonSnippet,
  versionLine,
  when
} from './model';

export namespace ModelsPanel {
  export interface IOptions {
    /** Open a notebook of this workspace (a version's provenance). */
    openFile: (path: string) => void;
  }
}

function button(
  label: string,
  testid: string,
  onClick: () => void,
  kind = 'reject'
): HTMLButtonElement {
  const b = el('button', `jp-Button jp-mod-styled jp-mod-${kind}`, label);
  b.type = 'button';
  b.dataset.testid = testid;
  b.addEventListener('click', onClick);
  return b;
}

/** Where this page's hub serves models (the page's own origin when the hub's is not set). */
function endpointBase(): string {
  const facts = hubFacts();
  const origin = facts?.hubHost || window.location.origin;
  return modelsBase(origin, facts ? hubBase(facts) : '/');
}

export class ModelsPanel extends Widget {
  constructor(options: ModelsPanel.IOptions) {
    super();
    this._options = options;
    this.id = 'mlfactory-models';
    this.addClass('mlfactory-Sidebar');
    this.addClass('mlfactory-ModelsPanel');
    this.node.dataset.testid = 'mlfactory-models';
    this.title.icon = modelsIcon;
    this.title.caption = 'Published models';

    const header = el('header', 'mlfactory-Sidebar-header');
    header.appendChild(el('h2', '', 'Models'));
    header.appendChild(
      button('Refresh', 'mlfactory-models-refresh', () => void this.refresh())
    );
    this._status = el('div', 'mlfactory-ModelsPanel-status');
    this._status.setAttribute('role', 'status');
    this._status.dataset.testid = 'mlfactory-models-status';
    this._list = el('ul', 'mlfactory-ModelsPanel-list');
    this._list.dataset.testid = 'mlfactory-models-list';
    this.node.append(header, this._status, this._list);
    modelsChanged.connect(this._onChanged, this);
  }

  override dispose(): void {
    modelsChanged.disconnect(this._onChanged, this);
    super.dispose();
  }

  /** Fetch the list, and the details of the models that are open. */
  async refresh(): Promise<void> {
    const turn = ++this._turn;
    this._status.textContent = 'Loading…';
    this._status.classList.remove('mlfactory-error');
    // The registry routes act for the server's owner: a visitor gets a plain line instead.
    const owner = await visitedOwner();
    if (owner !== null) {
      if (turn === this._turn && !this.isDisposed) {
        this._list.replaceChildren();
        this._status.textContent = `${visitingLine(owner)}: only ${owner} sees and publishes models here.`;
      }
      return;
    }
    try {
      const models = await listModels();
      const details = await Promise.all(
        models.map(m =>
          this._open.has(m.name) ? getModel(m.name).catch(() => m) : m
        )
      );
      if (turn !== this._turn || this.isDisposed) {
        return;
      }
      this._render(details);
      this._status.textContent = this._notice;
    } catch (error) {
      if (turn === this._turn) {
        this._status.textContent = errorText(
          error,
          'The models cannot be listed.'
        );
        this._status.classList.add('mlfactory-error');
      }
    }
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  private _onChanged(): void {
    if (this.isVisible) {
      void this.refresh();
    }
  }

  private _me(): string {
    return hubFacts()?.user ?? '';
  }

  private _render(models: IRegisteredModel[]): void {
    if (!models.length) {
      this._list.replaceChildren(
        el(
          'li',
          'mlfactory-ModelsPanel-empty',
          'No models yet. Train one in a notebook and press “Publish model” in its toolbar.'
        )
      );
      return;
    }
    this._list.replaceChildren(...models.map(m => this._item(m)));
  }

  private _item(m: IRegisteredModel): HTMLLIElement {
    const li = el('li', 'mlfactory-ModelsPanel-item');
    li.dataset.testid = 'mlfactory-model-item';
    li.dataset.model = m.name;
    const open = this._open.has(m.name);
    li.dataset.open = String(open);
    const head = el('div', 'mlfactory-ModelsPanel-head');
    head.appendChild(el('strong', '', m.name));
    head.appendChild(
      el(
        'span',
        'mlfactory-ModelsPanel-line',
        ` · ${m.latest ? `v${m.latest}` : 'no versions'} · owner ${m.owner} `
      )
    );
    const toggle = button(
      open ? 'Hide' : 'Details',
      'mlfactory-model-toggle',
      () => {
        if (this._open.has(m.name)) {
          this._open.delete(m.name);
        } else {
          this._open.add(m.name);
        }
        void this.refresh();
      }
    );
    toggle.setAttribute('aria-expanded', String(open));
    head.appendChild(toggle);
    li.appendChild(head);
    if (open && m.versions) {
      li.appendChild(this._body(m));
    } else if (open) {
      li.appendChild(el('p', '', 'Loading…'));
    }
    return li;
  }

  private _body(m: IRegisteredModel): HTMLElement {
    const body = el('div', 'mlfactory-ModelsPanel-body');
    const owner = m.owner === this._me();
    body.appendChild(
      this._snippets({ name: m.name, ref: '' }, 'Call it (default)')
    );

    const aliases = Object.values(m.aliases);
    body.appendChild(el('h4', '', 'Aliases'));
    const aliasList = el('ul', 'mlfactory-ModelsPanel-aliases');
    aliasList.dataset.testid = 'mlfactory-model-aliases';
    for (const a of aliases) {
      const item = el('li', '', aliasLine(a));
      item.dataset.alias = a.alias;
      item.appendChild(
        this._snippets({ name: m.name, ref: a.alias }, 'Snippets')
      );
      aliasList.appendChild(item);
    }
    if (!aliases.length) {
      aliasList.appendChild(el('li', '', 'None yet.'));
    }
    body.appendChild(aliasList);

    body.appendChild(el('h4', '', 'Versions'));
    const versions = el('ul', 'mlfactory-ModelsPanel-versions');
    for (const v of [...(m.versions ?? [])].reverse()) {
      versions.appendChild(this._version(m, v));
    }
    body.appendChild(versions);

    body.appendChild(this._grants(m, owner));
    return body;
  }

  private _version(m: IRegisteredModel, v: IVersion): HTMLLIElement {
    const li = el('li', 'mlfactory-ModelsPanel-version');
    li.dataset.testid = 'mlfactory-model-version';
    li.dataset.version = String(v.version);
    li.appendChild(el('div', '', versionLine(v)));
    const from = el('div', 'mlfactory-ModelsPanel-line');
    from.appendChild(document.createTextNode(provenanceLine(v)));
    if (v.notebook_path) {
      const path = v.notebook_path;
      const open = el('a', 'mlfactory-ModelsPanel-open', 'Open notebook');
      open.href = '#';
      open.addEventListener('click', event => {
        event.preventDefault();
        this._options.openFile(path);
      });
      from.append(' · ', open);
    }
    li.appendChild(from);
    if (!v.serving && v.serving_changed_by) {
      li.appendChild(
        el(
          'div',
          'mlfactory-ModelsPanel-line',
          `Stopped by ${v.serving_changed_by}, ${when(v.serving_changed_at)}`
        )
      );
    }
    const actions = el('div', 'mlfactory-ModelsPanel-actions');
    const alias = el('input', 'jp-mod-styled mlfactory-ModelsPanel-alias');
    alias.value = 'production';
    alias.size = 10;
    alias.setAttribute('aria-label', `Alias to point at version ${v.version}`);
    alias.dataset.testid = 'mlfactory-model-alias-name';
    actions.append(
      alias,
      button(
        'Move alias here',
        'mlfactory-model-move-alias',
        () => void this._moveAlias(m.name, alias.value.trim(), v.version)
      ),
      button(
        v.serving ? 'Stop serving' : 'Resume serving',
        'mlfactory-model-serving',
        () => void this._serving(m.name, v.version, !v.serving),
        v.serving ? 'warn' : 'accept'
      )
    );
    li.appendChild(actions);
    li.appendChild(
      this._snippets({ name: m.name, ref: String(v.version) }, 'Snippets')
    );
    return li;
  }

  private _grants(m: IRegisteredModel, owner: boolean): HTMLElement {
    const box = el('div', 'mlfactory-ModelsPanel-grants');
    box.appendChild(el('h4', '', 'Access'));
    const publish = el('input', 'jp-mod-styled');
    publish.value = (m.groups ?? []).join(', ');
    publish.disabled = !owner;
    publish.dataset.testid = 'mlfactory-model-publish-groups';
    const rows: [string, HTMLInputElement][] = [
      ['Groups that may publish and move aliases', publish]
    ];
    let predict: HTMLInputElement | null = null;
    if (m.predict_groups !== undefined) {
      predict = el('input', 'jp-mod-styled');
      predict.value = m.predict_groups.join(', ');
      predict.disabled = !owner;
      predict.dataset.testid = 'mlfactory-model-predict-groups';
      rows.push(['Groups that may call it', predict]);
    }
    for (const [label, input] of rows) {
      const row = el('label', 'mlfactory-ModelsPanel-field');
      row.append(el('span', '', label), input);
      box.appendChild(row);
    }
    if (owner) {
      box.appendChild(
        button(
          'Save access',
          'mlfactory-model-save-grants',
          () =>
            void this._grant(m.name, {
              groups: parseLabels(publish.value),
              ...(predict ? { predict_groups: parseLabels(predict.value) } : {})
            }),
          'accept'
        )
      );
    } else {
      box.appendChild(
        el('p', 'mlfactory-ModelsPanel-line', `Only ${m.owner} changes this.`)
      );
    }
    return box;
  }

  private _snippets(
    where: Pick<IEndpoint, 'name' | 'ref'>,
    title: string
  ): HTMLElement {
    const e: IEndpoint = { ...where, base: endpointBase() };
    const box = el('details', 'mlfactory-ModelsPanel-snippets');
    box.dataset.testid = 'mlfactory-model-snippets';
    box.appendChild(el('summary', '', title));
    for (const [label, text] of [
      ['Python SDK', sdkSnippet(e)],
      ['curl', curlSnippet(e)],
      ['tritonclient', tritonSnippet(e)]
    ]) {
      const pre = el('pre', 'mlfactory-ModelsPanel-code', text);
      pre.dataset.testid = `mlfactory-snippet-${label.split(' ').pop()!.toLowerCase()}`;
      box.append(
        el('div', 'mlfactory-ModelsPanel-snippetTitle', label),
        pre,
        button(`Copy ${label}`, 'mlfactory-snippet-copy', () =>
          Clipboard.copyToSystem(text)
        )
      );
    }
    return box;
  }

  private async _moveAlias(
    name: string,
    alias: string,
    version: number
  ): Promise<void> {
    if (!ALIAS_PATTERN.test(alias)) {
      this._fail(
        'An alias is 1–32 lowercase letters, digits, “-” or “_”, starting with a letter (e.g. production).'
      );
      return;
    }
    await this._act(
      () => moveAlias(name, alias, version),
      `${alias} now points at ${name} v${version}.`,
      'The alias could not be moved.'
    );
  }

  private async _serving(
    name: string,
    version: number,
    serving: boolean
  ): Promise<void> {
    await this._act(
      () => setServing(name, version, serving),
      serving
        ? `${name} v${version} is served again.`
        : `${name} v${version} is no longer served.`,
      'The serving state could not be changed.'
    );
  }

  private async _grant(
    name: string,
    grants: { groups?: string[]; predict_groups?: string[] }
  ): Promise<void> {
    await this._act(
      () => setGrants(name, grants),
      `Access to ${name} saved.`,
      'Access could not be saved.'
    );
  }

  private async _act(
    run: () => Promise<unknown>,
    done: string,
    fallback: string
  ): Promise<void> {
    try {
      await run();
      this._notice = done;
      this._status.textContent = done;
      this._status.classList.remove('mlfactory-error');
    } catch (error) {
      this._fail(errorText(error, fallback));
    }
  }

  private _fail(text: string): void {
    this._notice = '';
    this._status.textContent = text;
    this._status.classList.add('mlfactory-error');
  }

  private _options: ModelsPanel.IOptions;
  private _status: HTMLDivElement;
  private _list: HTMLUListElement;
  private _open = new Set<string>();
  private _turn = 0;
  private _notice = '';
}
