/**
 * Workspace shares: "Share workspace…" grants named users or groups access to
 * this whole server through JupyterHub's shares (they can run code as you),
 * and the Sharing panel's "This workspace" section lists them with Revoke.
 * Calls `<base>/mlfactory/workspace-shares` (owner only); a revocation closes
 * the recipient's open connections to this server within seconds.
 */
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { requestMlfactory } from '../handler';
import { errorText } from './api';
import { el, errorBox } from './dom';
import { type IRecipient, recipientLabel } from './model';
import { RecipientForm } from './recipients';

export const WARNING =
  'People you share this workspace with can run code as you, see all your files and use your budget.';

const BASE = ['workspace-shares'];

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

/** The dialog's body: the warning, then people and groups picked by search. */
export class WorkspaceShareForm extends RecipientForm<IRecipient[]> {
  constructor(picked: IRecipient[], error: string) {
    super({ picked, testid: 'mlfactory-workspace-share' });
    this.addClass('mlfactory-WorkspaceShareForm');
    this.node.dataset.testid = 'mlfactory-workspace-share-form';

    const warning = el('p', 'mlfactory-WorkspaceShareForm-warning', WARNING);
    warning.setAttribute('role', 'note');
    warning.dataset.testid = 'mlfactory-workspace-share-warning';
    this.node.appendChild(warning);
    if (error) {
      this.node.appendChild(errorBox(error, 'mlfactory-workspace-share-error'));
    }
    this.node.append(...this.picker.nodes);
  }

  getValue(): IRecipient[] {
    return this.picker.value;
  }
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
        li.appendChild(
          el('strong', 'mlfactory-SharingPanel-name', recipientLabel(g))
        );
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
      body: `${recipientLabel(g)} loses access now; their open kernels and terminals here are disconnected.`,
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
