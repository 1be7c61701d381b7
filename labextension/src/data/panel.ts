/**
 * The Data panel in the left area: the data stores this user's groups are
 * granted (read or read-write, through which groups), and a snippet that opens
 * each one with `mlfactory.data.connect`. Credentials never reach the page: a
 * kernel asks for its own. Fetched when shown and on Refresh, never at start-up.
 */
import { Clipboard } from '@jupyterlab/apputils';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { requestAPI } from '../handler';
import { el } from '../sharing/dom';
import { dataIcon } from './icon';

/** One connection as `GET mlfactory/api/data/connections` lists it. */
export interface IConnection {
  name: string;
  kind: string;
  description: string;
  access: 'read' | 'read-write';
  groups: string[];
  prefixes: string[];
  ttl: number;
  snippet: string;
}

/** How a grant reads in the panel, e.g. "read · via data-science". */
export function grantLine(c: IConnection): string {
  const via = c.groups.length ? ` · via ${c.groups.join(', ')}` : '';
  const where = c.prefixes.length ? ` · ${c.prefixes.join(', ')}` : '';
  return `${c.kind} · ${c.access}${via}${where}`;
}

export class DataPanel extends Widget {
  constructor() {
    super();
    this.id = 'mlfactory-data';
    this.addClass('mlfactory-Sidebar');
    this.addClass('mlfactory-DataPanel');
    this.node.dataset.testid = 'mlfactory-data';
    this.title.icon = dataIcon;
    this.title.caption = 'Data connections';

    const header = el('header', 'mlfactory-Sidebar-header');
    header.appendChild(el('h2', '', 'Data'));
    const refresh = el(
      'button',
      'jp-Button jp-mod-styled jp-mod-reject',
      'Refresh'
    );
    refresh.type = 'button';
    refresh.dataset.testid = 'mlfactory-data-refresh';
    refresh.addEventListener('click', () => void this.refresh());
    header.appendChild(refresh);
    this.node.appendChild(header);
    this.node.appendChild(this._body);
  }

  async refresh(): Promise<void> {
    this._body.replaceChildren(el('p', 'mlfactory-muted', 'Loading…'));
    let connections: IConnection[];
    try {
      const answer = await requestAPI<{ connections: IConnection[] }>(
        'data/connections'
      );
      connections = answer.connections ?? [];
    } catch (error) {
      const box = el('div', 'mlfactory-error', (error as Error).message);
      box.setAttribute('role', 'alert');
      box.dataset.testid = 'mlfactory-data-error';
      this._body.replaceChildren(box);
      return;
    }
    if (!connections.length) {
      this._body.replaceChildren(
        el(
          'p',
          'mlfactory-muted',
          'No data stores are granted to your groups. Ask a data admin for a grant.'
        )
      );
      return;
    }
    this._body.replaceChildren(...connections.map(c => this._item(c)));
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
  }

  private _item(c: IConnection): HTMLElement {
    const item = el('section', 'mlfactory-DataPanel-item');
    item.dataset.testid = 'mlfactory-data-connection';
    item.dataset.name = c.name;
    item.appendChild(el('h3', '', c.name));
    item.appendChild(el('p', 'mlfactory-muted', grantLine(c)));
    if (c.description) {
      item.appendChild(el('p', '', c.description));
    }
    const code = el('pre', 'mlfactory-DataPanel-snippet', c.snippet);
    code.dataset.testid = 'mlfactory-data-snippet';
    item.appendChild(code);
    const copy = el('button', 'jp-Button jp-mod-styled jp-mod-reject', 'Copy');
    copy.type = 'button';
    copy.addEventListener('click', () => Clipboard.copyToSystem(c.snippet));
    item.appendChild(copy);
    return item;
  }

  private _body = el('div', 'mlfactory-DataPanel-body');
}
