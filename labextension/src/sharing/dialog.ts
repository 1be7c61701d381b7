/**
 * The Share dialog: whom (search as you type among the users and groups the
 * owner may share with), how (view or copy), until when, and a message.
 * Refusals from the service (a recipient that does not exist, …) reopen the
 * dialog with what was entered and the service's words. After sharing, a
 * second dialog shows the link (it carries no token) with "Copy link".
 */
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { serviceUrl, hubFacts } from '../hub';
import { createShare, errorText, searchRecipients } from './api';
import {
  addRecipient,
  fileName,
  type IRecipient,
  type IShare,
  type IShareDraft,
  modeText,
  removeRecipient,
  shareRequest
} from './model';

const SEARCH_DELAY_MS = 150;

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

/** The link to a share: the service's page, on this page's origin. No token. */
export function shareLink(id: string): string {
  const facts = hubFacts();
  const path = facts
    ? serviceUrl(facts, `shares/${encodeURIComponent(id)}`)
    : `/services/mlfactory/shares/${encodeURIComponent(id)}`;
  return new URL(path, window.location.href).href;
}

/** The dialog's body: its value is the draft as entered. */
export class ShareForm
  extends Widget
  implements Dialog.IBodyWidget<IShareDraft>
{
  constructor(draft: IShareDraft, error: string) {
    super();
    this._draft = { ...draft, recipients: [...draft.recipients] };
    this.addClass('mlfactory-ShareForm');
    this.node.dataset.testid = 'mlfactory-share-form';

    if (error) {
      const box = el('div', 'mlfactory-error mlfactory-ShareForm-error', error);
      box.setAttribute('role', 'alert');
      box.dataset.testid = 'mlfactory-share-error';
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
    this._search.dataset.testid = 'mlfactory-share-search';
    this._search.addEventListener('input', () => this._schedule());
    who.append(this._chips, this._search);
    this._suggestions = el('ul', 'mlfactory-ShareForm-suggestions');
    this._suggestions.setAttribute('aria-label', 'Matching users and groups');
    this._suggestions.dataset.testid = 'mlfactory-share-suggestions';
    this._hint = el('p', 'mlfactory-ShareForm-hint');

    const how = el('fieldset', 'mlfactory-ShareForm-mode');
    how.appendChild(el('legend', '', 'They may'));
    for (const [mode, label] of [
      ['view', 'View it (a read-only preview)'],
      ['copy', 'Open their own copy']
    ] as const) {
      const option = el('label');
      const radio = el('input');
      radio.type = 'radio';
      radio.name = 'mlfactory-share-mode';
      radio.value = mode;
      radio.checked = this._draft.mode === mode;
      radio.dataset.testid = `mlfactory-share-mode-${mode}`;
      radio.addEventListener('change', () => {
        if (radio.checked) {
          this._draft.mode = mode;
        }
      });
      option.append(radio, document.createTextNode(` ${label}`));
      how.appendChild(option);
    }

    const until = el('label', 'mlfactory-ShareForm-field');
    until.appendChild(el('span', '', 'Expires after (optional)'));
    this._expires = el('input', 'jp-mod-styled');
    this._expires.type = 'date';
    this._expires.value = this._draft.expires;
    this._expires.dataset.testid = 'mlfactory-share-expires';
    until.appendChild(this._expires);

    const note = el('label', 'mlfactory-ShareForm-field');
    note.appendChild(el('span', '', 'Message (optional)'));
    this._message = el('textarea', 'jp-mod-styled');
    this._message.rows = 3;
    this._message.maxLength = 2000;
    this._message.value = this._draft.message;
    this._message.dataset.testid = 'mlfactory-share-message';
    note.appendChild(this._message);

    this.node.append(who, this._suggestions, this._hint, how, until, note);
    this._renderChips();
  }

  getValue(): IShareDraft {
    let recipients = this._draft.recipients;
    const typed = this._search.value.trim();
    if (typed) {
      // a name typed but not picked is meant as a user; the service says if not
      recipients = addRecipient(recipients, { kind: 'user', name: typed });
    }
    return {
      ...this._draft,
      recipients,
      message: this._message.value,
      expires: this._expires.value
    };
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
      this._showSuggestions(found.users, found.groups, found.truncated, q);
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

  private _showSuggestions(
    users: string[],
    groups: string[],
    truncated: boolean,
    q: string
  ): void {
    const items: IRecipient[] = [
      ...users.map(name => ({ kind: 'user' as const, name })),
      ...groups.map(name => ({ kind: 'group' as const, name }))
    ].filter(
      r =>
        !this._draft.recipients.some(
          x => x.kind === r.kind && x.name === r.name
        )
    );
    this._suggestions.replaceChildren(
      ...items.map(r => {
        const li = el('li');
        const pick = el(
          'button',
          'mlfactory-ShareForm-suggestion',
          r.kind === 'group' ? `${r.name} (group)` : r.name
        );
        pick.type = 'button';
        pick.dataset.testid = 'mlfactory-share-suggestion';
        pick.dataset.kind = r.kind;
        pick.dataset.name = r.name;
        pick.addEventListener('click', () => {
          this._draft.recipients = addRecipient(this._draft.recipients, r);
          this._search.value = '';
          this._renderChips();
          this._search.focus();
          this._schedule();
        });
        li.appendChild(pick);
        return li;
      })
    );
    this._hint.textContent = items.length
      ? truncated
        ? 'More names match: type more of the name.'
        : ''
      : q
        ? `Nobody you can share with is named “${q}…”.`
        : '';
  }

  private _renderChips(): void {
    this._chips.replaceChildren(
      ...this._draft.recipients.map(r => {
        const chip = el('span', 'mlfactory-ShareForm-chip');
        chip.dataset.testid = 'mlfactory-share-recipient';
        chip.dataset.kind = r.kind;
        chip.dataset.name = r.name;
        chip.appendChild(
          document.createTextNode(
            r.kind === 'group' ? `${r.name} (group)` : r.name
          )
        );
        const remove = el('button', 'mlfactory-ShareForm-chipRemove', '×');
        remove.type = 'button';
        remove.title = `Remove ${r.name}`;
        remove.setAttribute('aria-label', `Remove ${r.name}`);
        remove.addEventListener('click', () => {
          this._draft.recipients = removeRecipient(this._draft.recipients, r);
          this._renderChips();
          this._schedule();
        });
        chip.appendChild(remove);
        return chip;
      })
    );
  }

  private _draft: IShareDraft;
  private _chips: HTMLDivElement;
  private _search: HTMLInputElement;
  private _suggestions: HTMLUListElement;
  private _hint: HTMLParagraphElement;
  private _expires: HTMLInputElement;
  private _message: HTMLTextAreaElement;
  private _timer: number | undefined = undefined;
  private _abort: AbortController | null = null;
}

/**
 * Ask whom to share `path` with and share it; the share, or null when the
 * person cancelled. `save` saves the open notebook first (the server shares
 * the file as it is on disk).
 */
export async function shareNotebook(
  path: string,
  save: () => Promise<void>
): Promise<IShare | null> {
  let draft: IShareDraft = {
    path,
    recipients: [],
    mode: 'view',
    message: '',
    expires: ''
  };
  let error = '';
  for (;;) {
    const result = await showDialog<IShareDraft>({
      title: `Share “${fileName(path)}”`,
      body: new ShareForm(draft, error),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Share' })],
      focusNodeSelector: 'input[type="text"]'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    draft = result.value;
    if (!draft.recipients.length) {
      error = 'Pick at least one user or group to share with.';
      continue;
    }
    try {
      await save();
      const share = await createShare(shareRequest(draft));
      await showShared(share);
      return share;
    } catch (e) {
      error = errorText(e, 'The notebook could not be shared.');
    }
  }
}

/** "Shared": whom, how, and the link with a Copy link button. */
export async function showShared(share: IShare): Promise<void> {
  const body = el('div', 'mlfactory-ShareDone');
  body.dataset.testid = 'mlfactory-share-done';
  const who = [
    ...(share.users ?? []),
    ...(share.groups ?? []).map(g => `group ${g}`)
  ].join(', ');
  body.appendChild(
    el(
      'p',
      '',
      `“${share.name}” (version ${share.version}) is shared with ${who}: ${modeText(share.mode)}.`
    )
  );
  const link = shareLink(share.id);
  const field = el('input', 'jp-mod-styled mlfactory-ShareDone-link');
  field.readOnly = true;
  field.value = link;
  field.setAttribute('aria-label', 'Link to the share');
  field.dataset.testid = 'mlfactory-share-link';
  body.appendChild(field);
  body.appendChild(
    el(
      'p',
      'mlfactory-ShareForm-hint',
      'The link works only for the people you shared with; it holds no password or token.'
    )
  );
  const result = await showDialog({
    title: 'Shared',
    body: new Widget({ node: body }),
    buttons: [
      Dialog.cancelButton({ label: 'Close' }),
      Dialog.okButton({ label: 'Copy link' })
    ]
  });
  if (result.button.accept) {
    Clipboard.copyToSystem(link);
  }
}
