/**
 * The Share dialog: whom (search as you type among the users and groups the
 * owner may share with), how (view or copy), until when, and a message.
 * Refusals from the service (a recipient that does not exist, …) reopen the
 * dialog with what was entered and the service's words. After sharing, a
 * second dialog shows the link (it carries no token) with "Copy link".
 */
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { serviceUrl, hubFacts } from '../hub';
import { createShare, errorText } from './api';
import { el, errorBox } from './dom';
import {
  fileName,
  type IShare,
  type IShareDraft,
  modeText,
  shareRequest
} from './model';
import { RecipientForm } from './recipients';

/** The link to a share: the service's page, on this page's origin. No token. */
export function shareLink(id: string): string {
  const facts = hubFacts();
  const path = facts
    ? serviceUrl(facts, `shares/${encodeURIComponent(id)}`)
    : `/services/mlfactory/shares/${encodeURIComponent(id)}`;
  return new URL(path, window.location.href).href;
}

/** The dialog's body: its value is the draft as entered. */
export class ShareForm extends RecipientForm<IShareDraft> {
  constructor(draft: IShareDraft, error: string) {
    super({ picked: draft.recipients, testid: 'mlfactory-share' });
    this._draft = { ...draft };
    this.node.dataset.testid = 'mlfactory-share-form';

    if (error) {
      this.node.appendChild(errorBox(error, 'mlfactory-share-error'));
    }

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

    this.node.append(...this.picker.nodes, how, until, note);
  }

  getValue(): IShareDraft {
    return {
      ...this._draft,
      recipients: this.picker.value,
      message: this._message.value,
      expires: this._expires.value
    };
  }

  private _draft: IShareDraft;
  private _expires: HTMLInputElement;
  private _message: HTMLTextAreaElement;
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
