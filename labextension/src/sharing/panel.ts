/**
 * The Sharing panel in the left area: "Shared with me" (preview, open a
 * copy) and "My shares" (copy link, update to the notebook as it is now,
 * revoke). Fetched when shown and on Refresh, never at start-up.
 */
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { visitedOwner, visitingLine } from '../handler';

import {
  errorText,
  myShares,
  openCopy,
  revokeShare,
  sharedWithMe,
  sharesChanged,
  updateShare
} from './api';
import { shareLink } from './dialog';
import { el } from './dom';
import { shareIcon } from './icon';
import { type IShare, ownLine, receivedLine } from './model';

export namespace SharingPanel {
  export interface IOptions {
    /** Show the preview of a share in the main area. */
    preview: (share: IShare) => void;
    /** Open a file of this workspace (the copy just written). */
    openFile: (path: string) => void;
    /** Save the open notebook at `path`, if open, before a new version. */
    save: (path: string) => Promise<void>;
    /** The "This workspace" section (workspace.ts), refreshed with the lists. */
    workspace?: { node: HTMLElement; refresh: () => Promise<void> };
  }
}

function action(
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

export class SharingPanel extends Widget {
  constructor(options: SharingPanel.IOptions) {
    super();
    this._options = options;
    this.id = 'mlfactory-sharing';
    this.addClass('mlfactory-Sidebar');
    this.addClass('mlfactory-SharingPanel');
    this.node.dataset.testid = 'mlfactory-sharing';
    this.title.icon = shareIcon;
    this.title.caption = 'Shared notebooks';

    const header = el('header', 'mlfactory-Sidebar-header');
    header.appendChild(el('h2', '', 'Sharing'));
    header.appendChild(
      action('Refresh', 'mlfactory-sharing-refresh', () => void this.refresh())
    );
    this._status = el('div', 'mlfactory-SharingPanel-status');
    this._status.setAttribute('role', 'status');
    this._received = el('ul', 'mlfactory-SharingPanel-list');
    this._received.dataset.testid = 'mlfactory-shared-with-me';
    this._mine = el('ul', 'mlfactory-SharingPanel-list');
    this._mine.dataset.testid = 'mlfactory-my-shares';
    this.node.append(
      header,
      this._status,
      el('h3', '', 'Shared with me'),
      this._received,
      el('h3', '', 'My shares'),
      this._mine
    );
    if (options.workspace) {
      this.node.appendChild(options.workspace.node);
    }
    sharesChanged.connect(this._onChanged, this);
  }

  override dispose(): void {
    sharesChanged.disconnect(this._onChanged, this);
    super.dispose();
  }

  /** Fetch both lists again. */
  async refresh(): Promise<void> {
    const turn = ++this._turn;
    this._status.textContent = 'Loading…';
    // Both lists and the workspace's grantees are the owner's (owner-only routes).
    const owner = await visitedOwner();
    if (owner !== null) {
      if (turn === this._turn && !this.isDisposed) {
        this._showVisiting(owner);
      }
      return;
    }
    void this._options.workspace?.refresh();
    const [received, mine] = await Promise.allSettled([
      sharedWithMe(),
      myShares()
    ]);
    if (turn !== this._turn || this.isDisposed) {
      return;
    }
    const problems: string[] = [];
    if (received.status === 'fulfilled') {
      this._renderReceived(received.value);
    } else {
      problems.push(
        errorText(received.reason, 'Shared notebooks cannot be listed.')
      );
    }
    if (mine.status === 'fulfilled') {
      this._renderMine(mine.value);
    } else if (!problems.length) {
      problems.push(errorText(mine.reason, 'Your shares cannot be listed.'));
    }
    this._status.textContent = problems.join(' ') || this._notice;
    this._status.classList.toggle('mlfactory-error', problems.length > 0);
  }

  /** A visitor's panel: whose workspace this is, and where their own shares are. */
  private _showVisiting(owner: string): void {
    this._status.textContent = `${visitingLine(owner)}. Notebooks shared with you, and your own shares, are in the Sharing panel of your own workspace.`;
    this._status.dataset.testid = 'mlfactory-visiting';
    this._status.classList.remove('mlfactory-error');
    for (const part of this.node.querySelectorAll(
      'h3, .mlfactory-SharingPanel-list, .mlfactory-WorkspaceSection'
    )) {
      (part as HTMLElement).hidden = true;
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

  private _item(share: IShare, line: string): HTMLLIElement {
    const li = el('li', 'mlfactory-SharingPanel-item');
    li.dataset.testid = 'mlfactory-share-item';
    li.dataset.shareId = share.id;
    li.appendChild(el('strong', 'mlfactory-SharingPanel-name', share.name));
    li.appendChild(el('div', 'mlfactory-SharingPanel-line', line));
    if (share.message) {
      li.appendChild(
        el('blockquote', 'mlfactory-SharingPanel-message', share.message)
      );
    }
    return li;
  }

  private _renderReceived(shares: IShare[]): void {
    if (!shares.length) {
      this._received.replaceChildren(
        el(
          'li',
          'mlfactory-SharingPanel-empty',
          'Nothing is shared with you yet.'
        )
      );
      return;
    }
    this._received.replaceChildren(
      ...shares.map(share => {
        const li = this._item(share, receivedLine(share));
        const buttons = el('div', 'mlfactory-SharingPanel-actions');
        buttons.appendChild(
          action('Preview', 'mlfactory-share-preview-open', () =>
            this._options.preview(share)
          )
        );
        if (share.mode === 'copy') {
          buttons.appendChild(
            action(
              'Open copy',
              'mlfactory-share-open-copy',
              () => void this._openCopy(share),
              'accept'
            )
          );
        }
        li.appendChild(buttons);
        return li;
      })
    );
  }

  private _renderMine(shares: IShare[]): void {
    const live = shares.filter(s => s.status !== 'revoked');
    if (!live.length) {
      this._mine.replaceChildren(
        el(
          'li',
          'mlfactory-SharingPanel-empty',
          'You have shared nothing. Use “Share…” in a notebook’s toolbar or the file browser’s menu.'
        )
      );
      return;
    }
    this._mine.replaceChildren(
      ...live.map(share => {
        const li = this._item(share, ownLine(share));
        const buttons = el('div', 'mlfactory-SharingPanel-actions');
        buttons.append(
          action('Copy link', 'mlfactory-share-copy-link', () =>
            Clipboard.copyToSystem(shareLink(share.id))
          ),
          action(
            'Update share',
            'mlfactory-share-update',
            () => void this._update(share)
          ),
          action(
            'Revoke',
            'mlfactory-share-revoke',
            () => void this._revoke(share),
            'warn'
          )
        );
        li.appendChild(buttons);
        return li;
      })
    );
  }

  private async _openCopy(share: IShare): Promise<void> {
    this._say(`Copying “${share.name}”…`);
    try {
      const opened = await openCopy(share.id);
      this._say(`Your copy is ${opened.path}.`);
      this._options.openFile(opened.path);
    } catch (error) {
      this._fail(error, 'The copy could not be made.');
    }
  }

  private async _update(share: IShare): Promise<void> {
    try {
      if (share.path) {
        await this._options.save(share.path);
      }
      const updated = await updateShare(share.id);
      this._say(`“${updated.name}” is shared as version ${updated.version}.`);
    } catch (error) {
      this._fail(error, 'The share could not be updated.');
    }
  }

  private async _revoke(share: IShare): Promise<void> {
    const answer = await showDialog({
      title: 'Revoke share',
      body: `Stop sharing “${share.name}”? Its link stops working and the people you shared it with no longer see it. Copies they made stay theirs.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Revoke' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await revokeShare(share.id);
    } catch (error) {
      this._fail(error, 'The share could not be revoked.');
    }
  }

  /** A line that stays (a refresh shows it again) until the next action. */
  private _say(text: string): void {
    this._notice = text;
    this._status.textContent = text;
    this._status.classList.remove('mlfactory-error');
  }

  private _fail(error: unknown, fallback: string): void {
    this._notice = '';
    this._status.textContent = errorText(error, fallback);
    this._status.classList.add('mlfactory-error');
  }

  private _options: SharingPanel.IOptions;
  private _status: HTMLDivElement;
  private _received: HTMLUListElement;
  private _mine: HTMLUListElement;
  private _turn = 0;
  private _notice = '';
}
