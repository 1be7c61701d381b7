/**
 * The recipient picker of both Share dialogs (a notebook, the workspace):
 * chips of those picked, each with a remove button, a search box that looks
 * names up as one types (debounced; a new lookup aborts the one before),
 * and the matching users and groups to pick from. Test ids are the dialog's
 * prefix plus `-search`, `-suggestions`, `-suggestion` and `-recipient`.
 */
import type { Dialog } from '@jupyterlab/apputils';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { errorText, searchRecipients } from './api';
import { el } from './dom';
import {
  addRecipient,
  type IRecipient,
  recipientLabel,
  removeRecipient
} from './model';

const SEARCH_DELAY_MS = 150;

export namespace RecipientPicker {
  export interface IOptions {
    /** Those already picked (a dialog reopened after a refusal). */
    picked: readonly IRecipient[];
    /** `mlfactory-share` or `mlfactory-workspace-share`. */
    testid: string;
  }
}

/**
 * The dialog puts `nodes` in its body, calls `attached()` once shown and
 * `dispose()` when disposed (which stops the timer and the lookup), as
 * `RecipientForm` does.
 */
export class RecipientPicker {
  constructor(options: RecipientPicker.IOptions) {
    const prefix = options.testid;
    this._picked = [...options.picked];
    this._prefix = prefix;

    this.field = el('label', 'mlfactory-ShareForm-field');
    this.field.appendChild(el('span', '', 'Share with (users and groups)'));
    this._chips = el('div', 'mlfactory-ShareForm-chips');
    this._search = el('input', 'jp-mod-styled');
    this._search.type = 'text';
    this._search.placeholder = 'Type a name…';
    this._search.autocomplete = 'off';
    this._search.setAttribute('aria-label', 'Search users and groups');
    this._search.dataset.testid = `${prefix}-search`;
    this._search.addEventListener('input', () => this._schedule());
    this.field.append(this._chips, this._search);
    this.suggestions = el('ul', 'mlfactory-ShareForm-suggestions');
    this.suggestions.setAttribute('aria-label', 'Matching users and groups');
    this.suggestions.dataset.testid = `${prefix}-suggestions`;
    this.hint = el('p', 'mlfactory-ShareForm-hint');
    this._renderChips();
  }

  /** The search field: its caption, the chips and the search box. */
  readonly field: HTMLLabelElement;
  readonly suggestions: HTMLUListElement;
  readonly hint: HTMLParagraphElement;

  /** The picker's nodes, in the order they go into the dialog's body. */
  get nodes(): HTMLElement[] {
    return [this.field, this.suggestions, this.hint];
  }

  /** Those picked, and a name typed but not picked, meant as a user. */
  get value(): IRecipient[] {
    const typed = this._search.value.trim();
    // the service (or the hub) says if no such user
    return typed
      ? addRecipient(this._picked, { kind: 'user', name: typed })
      : [...this._picked];
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Once shown: focus the search box and list the first names. */
  attached(): void {
    this._search.focus();
    this._schedule();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    if (this._timer !== undefined) {
      window.clearTimeout(this._timer);
      this._timer = undefined;
    }
    this._abort?.abort();
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
      if (abort.signal.aborted || this._disposed) {
        return;
      }
      this._showSuggestions(found.users, found.groups, found.truncated, q);
    } catch (error) {
      if (abort.signal.aborted || this._disposed) {
        return;
      }
      this.suggestions.replaceChildren();
      this.hint.textContent = errorText(
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
      r => !this._picked.some(x => x.kind === r.kind && x.name === r.name)
    );
    this.suggestions.replaceChildren(
      ...items.map(r => {
        const li = el('li');
        const pick = el(
          'button',
          'mlfactory-ShareForm-suggestion',
          recipientLabel(r)
        );
        pick.type = 'button';
        pick.dataset.testid = `${this._prefix}-suggestion`;
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
    this.hint.textContent = items.length
      ? truncated
        ? 'More names match: type more of the name.'
        : ''
      : q
        ? `Nobody you can share with is named “${q}…”.`
        : '';
  }

  private _renderChips(): void {
    this._chips.replaceChildren(
      ...this._picked.map(r => {
        const chip = el('span', 'mlfactory-ShareForm-chip');
        chip.dataset.testid = `${this._prefix}-recipient`;
        chip.dataset.kind = r.kind;
        chip.dataset.name = r.name;
        chip.appendChild(document.createTextNode(recipientLabel(r)));
        const remove = el('button', 'mlfactory-ShareForm-chipRemove', '×');
        remove.type = 'button';
        remove.title = `Remove ${r.name}`;
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
  private readonly _prefix: string;
  private readonly _chips: HTMLDivElement;
  private readonly _search: HTMLInputElement;
  private _timer: number | undefined = undefined;
  private _abort: AbortController | null = null;
  private _disposed = false;
}

/**
 * A Share dialog's body around a `RecipientPicker`: the subclass puts
 * `picker.nodes` in its node; the search box is focused once shown and the
 * lookups stop when the body is disposed.
 */
export abstract class RecipientForm<T>
  extends Widget
  implements Dialog.IBodyWidget<T>
{
  constructor(options: RecipientPicker.IOptions) {
    super();
    this.addClass('mlfactory-ShareForm');
    this.picker = new RecipientPicker(options);
  }

  abstract getValue(): T;

  override dispose(): void {
    this.picker.dispose();
    super.dispose();
  }

  protected override onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.picker.attached();
  }

  protected readonly picker: RecipientPicker;
}
