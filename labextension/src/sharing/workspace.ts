/**
 * Workspace shares: "Share workspace…" grants named users or groups access to
 * this whole server through JupyterHub's shares (they can run code as you),
 * and the Sharing panel's "This workspace" section lists them with Revoke.
 * Calls `<base>/mlfactory/workspace-shares` (owner only); a revocation closes
 * the recipient's open connections to this server within seconds.
 */
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import type { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { requestMlfactory } from '../handler';
import { errorText, searchRecipients } from './api';
import { addRecipient, type IRecipient, removeRecipient } from './model';

export const WARNING =
  'People you share this workspace with can run code as you, see all your files and use your budget.';

const BASE = ['workspace-shares'];
const SEARCH_DELAY_MS = 150;

export interface IGrantee {
  kind: 'user' | 'group';
  name: string;
  created_at: string;
}

export interface IWorkspaceShares {
  grantees: IGrantee[];
  /** This server's path (`/user/<owner>/<server>/lab`): recipients open it. */
  url: string;
  warning: string;
}

/** Emitted after a workspace share is granted or revoked from this page. */
export const workspaceSharesChanged = new Signal<object, void>({});

export function listWorkspaceShares(): Promise<IWorkspaceShares> {
  return requestMlfactory<IWorkspaceShares>(BASE);
}

export async function grantWorkspaceShare(
  who: IRecipient
): Promise<IWorkspaceShares> {
  const answer = await requestMlfactory<IWorkspaceShares>(
    BASE,
    {},
    { method: 'POST', body: JSON.stringify({ [who.kind]: who.name }) }
  );
  workspaceSharesChanged.emit();
  return answer;
}

export async function revokeWorkspaceShare(
  who: IRecipient
): Promise<IWorkspaceShares> {
  const answer = await requestMlfactory<IWorkspaceShares>(
    BASE,
    { [who.kind]: who.name },
    { method: 'DELETE' }
  );
  workspaceSharesChanged.emit();
  return answer;
}

/** The link a recipient opens: this server's own URL, on this origin. */
export function workspaceLink(url: string): string {
  return new URL(url, window.location.href).href;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

function label(r: IRecipient): string {
  return r.kind === 'group' ? `${r.name} (group)` : r.name;
}

/** The dialog's body: the warning, then people and groups picked by search. */
export class WorkspaceShareForm
  extends Widget
  implements Dialog.IBodyWidget<IRecipient[]>
{
  constructor(picked: IRecipient[], error: string) {
    super();
    this._picked = [...picked];
    this.addClass('mlfactory-ShareForm');
    this.addClass('mlfactory-WorkspaceShareForm');
    this.node.dataset.testid = 'mlfactory-workspace-share-form';

    const warning = el('p', 'mlfactory-WorkspaceShareForm-warning', WARNING);
    warning.setAttribute('role', 'note');
    warning.dataset.testid = 'mlfactory-workspace-share-warning';
    this.node.appendChild(warning);
    if (error) {
      const box = el('div', 'mlfactory-error mlfactory-ShareForm-error', error);
      box.setAttribute('role', 'alert');
      box.dataset.testid = 'mlfactory-workspace-share-error';
      this.node.appendChild(box);
    }
    const who = el('label', 'mlfactory-ShareForm-field');
    who.appendChild(el('span', '', 'Share with (users and groups)'));
    this._chips = el('div', 'mlfactory-ShareForm-chips');
    this._search = el('input', 'jp-mod-styled');
    this._search.type = 'text';
    this._search.placeholder = 'Type a name…';
    this._search.autocomplete = 'off';
    this._search.setAttribute('aria-label', 'Search users and groups');
    this._search.dataset.testid = 'mlfactory-workspace-share-search';
    this._search.addEventListener('input', () => this._schedule());
    who.append(this._chips, this._search);
    this._suggestions = el('ul', 'mlfactory-ShareForm-suggestions');
    this._hint = el('p', 'mlfactory-ShareForm-hint');
    this.node.append(who, this._suggestions, this._hint);
    this._renderChips();
  }

  getValue(): IRecipient[] {
    const typed = this._search.value.trim();
    // a name typed but not picked is meant as a user; the hub says if not
    return typed
      ? addRecipient(this._picked, { kind: 'user', name: typed })
      : this._picked;
  }

  override dispose(): void {
    if (this._timer !== undefined) {
      window.clearTimeout(this._timer);
    }
    this._abort?.abort();
    super.dispose();
  }

  protected override onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._search.focus();
    this._schedule();
  }

  private _schedule(): void {
    if (this._timer !== undefined) {
      window.clearTimeout(this._timer);
    }
    this._timer = window.setTimeout(() => {
      this._timer = undefined;
      void this._lookUp(this._search.value.trim());
    }, SEARCH_DELAY_MS);
  }

  private async _lookUp(q: string): Promise<void> {
    this._abort?.abort();
    const abort = (this._abort = new AbortController());
    try {
      const found = await searchRecipients(q, abort.signal);
      if (abort.signal.aborted || this.isDisposed) {
        return;
      }
      const items: IRecipient[] = [
        ...found.users.map(name => ({ kind: 'user' as const, name })),
        ...found.groups.map(name => ({ kind: 'group' as const, name }))
      ].filter(
        r => !this._picked.some(x => x.kind === r.kind && x.name === r.name)
      );
      this._suggestions.replaceChildren(
        ...items.map(r => {
          const li = el('li');
          const pick = el('button', 'mlfactory-ShareForm-suggestion', label(r));
          pick.type = 'button';
          pick.dataset.testid = 'mlfactory-workspace-share-suggestion';
          pick.dataset.kind = r.kind;
          pick.dataset.name = r.name;
          pick.addEventListener('click', () => {
            this._picked = addRecipient(this._picked, r);
            this._search.value = '';
            this._renderChips();
            this._search.focus();
            this._schedule();
          });
          li.appendChild(pick);
          return li;
        })
      );
      this._hint.textContent =
        items.length || !q ? '' : `Nobody you can share with is named “${q}…”.`;
    } catch (error) {
      if (abort.signal.aborted || this.isDisposed) {
        return;
      }
      this._suggestions.replaceChildren();
      this._hint.textContent = errorText(
        error,
        'Names cannot be looked up now; type a full user name.'
      );
    }
  }

  private _renderChips(): void {
    this._chips.replaceChildren(
      ...this._picked.map(r => {
        const chip = el('span', 'mlfactory-ShareForm-chip', label(r));
        chip.dataset.testid = 'mlfactory-workspace-share-recipient';
        chip.dataset.kind = r.kind;
        chip.dataset.name = r.name;
        const remove = el('button', 'mlfactory-ShareForm-chipRemove', '×');
        remove.type = 'button';
        remove.setAttribute('aria-label', `Remove ${r.name}`);
        remove.addEventListener('click', () => {
          this._picked = removeRecipient(this._picked, r);
          this._renderChips();
          this._schedule();
        });
        chip.appendChild(remove);
        return chip;
      })
    );
  }

  private _picked: IRecipient[];
  private _chips: HTMLDivElement;
  private _search: HTMLInputElement;
  private _suggestions: HTMLUListElement;
  private _hint: HTMLParagraphElement;
  private _timer: number | undefined = undefined;
  private _abort: AbortController | null = null;
}

/**
 * Ask whom to share this workspace with and grant each; a refusal reopens
 * the dialog with those not yet granted and the hub's words. Resolves with
 * the shares as they stand, or null when cancelled.
 */
export async function shareWorkspace(): Promise<IWorkspaceShares | null> {
  let pending: IRecipient[] = [];
  let error = '';
  for (;;) {
    const result = await showDialog({
      title: 'Share this workspace',
      body: new WorkspaceShareForm(pending, error),
      buttons: [
        Dialog.cancelButton(),
        Dialog.okButton({ label: 'Share workspace' })
      ],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    pending = result.value;
    if (!pending.length) {
      error = 'Pick at least one user or group.';
      continue;
    }
    let answer: IWorkspaceShares | null = null;
    try {
      while (pending.length) {
        answer = await grantWorkspaceShare(pending[0]);
        pending = pending.slice(1);
      }
    } catch (e) {
      error = errorText(e, 'The workspace could not be shared.');
      continue;
    }
    if (answer) {
      await showDialog({
        title: 'Workspace shared',
        body: linkBody(answer.url),
        buttons: [
          Dialog.createButton({
            label: 'Copy link',
            actions: ['copy'],
            displayType: 'default'
          }),
          Dialog.okButton({ label: 'Done' })
        ]
      }).then(r => {
        if (r.button.actions.includes('copy')) {
          Clipboard.copyToSystem(workspaceLink(answer!.url));
        }
      });
    }
    return answer;
  }
}

function linkBody(url: string): Widget {
  const body = new Widget();
  body.node.appendChild(
    el(
      'p',
      '',
      'They open your workspace at this address, signed in as themselves:'
    )
  );
  const link = el('code', 'mlfactory-WorkspaceShare-link', workspaceLink(url));
  link.dataset.testid = 'mlfactory-workspace-share-link';
  body.node.appendChild(link);
  return body;
}

/**
 * The Sharing panel's "This workspace" section: the warning, who has access,
 * Revoke for each, and "Share workspace…". Fetched when the panel refreshes.
 */
export class WorkspaceSection {
  constructor(share: () => Promise<unknown>) {
    this.node = el('section', 'mlfactory-WorkspaceSection');
    this.node.dataset.testid = 'mlfactory-workspace-shares';
    const head = el('div', 'mlfactory-WorkspaceSection-head');
    head.appendChild(el('h3', '', 'This workspace'));
    const button = el(
      'button',
      'jp-Button jp-mod-styled jp-mod-accept',
      'Share workspace…'
    );
    button.type = 'button';
    button.dataset.testid = 'mlfactory-workspace-share-open';
    button.addEventListener('click', () => void share());
    head.appendChild(button);
    this._status = el('div', 'mlfactory-SharingPanel-status');
    this._status.setAttribute('role', 'status');
    this._list = el('ul', 'mlfactory-SharingPanel-list');
    this._list.dataset.testid = 'mlfactory-workspace-grantees';
    this.node.append(
      head,
      el('p', 'mlfactory-WorkspaceShareForm-warning', WARNING),
      this._status,
      this._list
    );
  }

  readonly node: HTMLElement;

  async refresh(): Promise<void> {
    const turn = ++this._turn;
    try {
      const answer = await listWorkspaceShares();
      if (turn === this._turn) {
        this._render(answer);
      }
    } catch (error) {
      if (turn === this._turn) {
        this._status.textContent = errorText(
          error,
          'Who this workspace is shared with cannot be listed.'
        );
        this._status.classList.add('mlfactory-error');
      }
    }
  }

  private _render(answer: IWorkspaceShares): void {
    this._status.textContent = '';
    this._status.classList.remove('mlfactory-error');
    if (!answer.grantees.length) {
      this._list.replaceChildren(
        el('li', 'mlfactory-SharingPanel-empty', 'Only you can use it.')
      );
      return;
    }
    this._list.replaceChildren(
      ...answer.grantees.map(g => {
        const li = el('li', 'mlfactory-SharingPanel-item');
        li.dataset.testid = 'mlfactory-workspace-grantee';
        li.dataset.kind = g.kind;
        li.dataset.name = g.name;
        li.appendChild(el('strong', 'mlfactory-SharingPanel-name', label(g)));
        const revoke = el(
          'button',
          'jp-Button jp-mod-styled jp-mod-warn',
          'Revoke'
        );
        revoke.type = 'button';
        revoke.dataset.testid = 'mlfactory-workspace-revoke';
        revoke.addEventListener('click', () => void this._revoke(g));
        const actions = el('div', 'mlfactory-SharingPanel-actions');
        actions.appendChild(revoke);
        li.appendChild(actions);
        return li;
      })
    );
  }

  private async _revoke(g: IGrantee): Promise<void> {
    const ok = await showDialog({
      title: 'Revoke access to this workspace?',
      body: `${label(g)} loses access now; their open kernels and terminals here are disconnected.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Revoke' })]
    });
    if (!ok.button.accept) {
      return;
    }
    try {
      this._render(await revokeWorkspaceShare(g));
    } catch (error) {
      this._status.textContent = errorText(
        error,
        'The share could not be revoked.'
      );
      this._status.classList.add('mlfactory-error');
    }
  }

  private _list: HTMLUListElement;
  private _status: HTMLDivElement;
  private _turn = 0;
}
