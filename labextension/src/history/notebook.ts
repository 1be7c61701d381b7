/**
 * The notebook part of the History panel: the active notebook's versions and
 * working copy, saving a version, ticking two to compare, and restoring one.
 * The panel says which notebook to show and when to fetch its versions.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';

import { restoreVersion, saveVersion, notebookPath } from './actions';
import {
  errorText,
  type IVersion,
  type IVersionList,
  requestHistory,
  WORKING,
  withQuery
} from './api';
import { button, detailsView, div, errorBox, paragraph } from './dom';
import {
  formatTimes,
  type IVersionRef,
  orderPair,
  toggleSelection,
  versionDetails,
  versionLabel,
  versionRef,
  workingRef
} from './versions';

const VERSION_LIMIT = 100;

export namespace NotebookSection {
  export interface IOptions {
    /** Whether the workspace keeps versions (no versions to fetch if not). */
    tracked: () => boolean;
    /** Open the diff of `path` between two versions in the main area. */
    openDiff: (path: string, from: IVersionRef, to: IVersionRef) => void;
  }
}

export class NotebookSection {
  readonly node: HTMLElement;

  constructor(options: NotebookSection.IOptions) {
    this._tracked = options.tracked;
    this._openDiff = options.openDiff;

    this.node = document.createElement('section');
    this.node.className =
      'mlfactory-Sidebar-section mlfactory-HistoryPanel-notebook';
    this._titleNode = document.createElement('h3');
    this._titleNode.dataset.testid = 'mlfactory-history-notebook';

    const form = document.createElement('form');
    form.className = 'mlfactory-HistoryPanel-save';
    this._messageInput = document.createElement('input');
    this._messageInput.type = 'text';
    this._messageInput.className = 'jp-mod-styled';
    this._messageInput.placeholder = 'What changed?';
    this._messageInput.setAttribute('aria-label', 'Version message');
    this._messageInput.maxLength = 500;
    this._saveButton = button('Save version', null, 'accept');
    this._saveButton.type = 'submit';
    this._saveButton.title = 'Save the notebook and keep it as a version';
    form.append(this._messageInput, this._saveButton);
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this._saveVersion();
    });

    this._feedbackNode = div('mlfactory-HistoryPanel-feedback');
    this._feedbackNode.setAttribute('role', 'status');

    const compare = div('mlfactory-HistoryPanel-compareBar');
    this._compareButton = button('Compare', () => this._compare(), 'reject');
    this._compareButton.dataset.testid = 'mlfactory-history-compare';
    this._compareHint = document.createElement('span');
    this._compareHint.className = 'mlfactory-HistoryPanel-hint';
    compare.append(this._compareButton, this._compareHint);

    this._listNode = document.createElement('ul');
    this._listNode.className = 'mlfactory-HistoryPanel-versions';
    this._listNode.setAttribute('aria-label', 'Versions');

    this.node.append(
      this._titleNode,
      form,
      this._feedbackNode,
      compare,
      this._listNode
    );
  }

  /** Show `widget`'s history (null: none); drop late answers for the last. */
  show(widget: NotebookPanel | null): void {
    this._notebook = widget;
    this._generation++;
    this._selected = [];
    this._versions = null;
    this._feedback('');
    this.renderTitle();
    this._renderVersions();
  }

  /** The notebook was renamed or moved: its selection no longer holds. */
  pathChanged(): void {
    this._selected = [];
    this.renderTitle();
  }

  /** Show the notebook's path (known once its context is ready). */
  renderTitle(): void {
    const widget = this._notebook;
    this._titleNode.textContent = widget
      ? notebookPath(widget) || widget.context.path
      : 'No notebook';
    this._titleNode.title = widget ? notebookPath(widget) : '';
    const enabled = widget !== null;
    this._messageInput.disabled = !enabled;
    this._saveButton.disabled = !enabled;
  }

  /** Fetch the notebook's versions (again). */
  async load(): Promise<void> {
    const widget = this._notebook;
    if (!widget || !this._tracked()) {
      this._renderVersions();
      return;
    }
    const path = notebookPath(widget);
    const generation = ++this._generation;
    if (!this._versions) {
      this._listNode.replaceChildren(
        listItem(paragraph('Loading…', 'mlfactory-loading'))
      );
    }
    try {
      const list = await requestHistory<IVersionList>(
        withQuery('versions', { path, limit: VERSION_LIMIT })
      );
      if (generation !== this._generation) {
        return; // another notebook (or a newer request) took over
      }
      this._versions = list;
      const ids = new Set([WORKING, ...list.versions.map(v => v.id)]);
      this._selected = this._selected.filter(id => ids.has(id));
      this._renderVersions();
    } catch (error) {
      if (generation !== this._generation) {
        return;
      }
      this._versions = null;
      this._listNode.replaceChildren(
        listItem(
          errorBox(errorText(error, 'Could not load the versions.')),
          button('Retry', () => void this.load(), 'reject')
        )
      );
      this._renderCompareBar();
    }
  }

  /** Keep "3 minutes ago" true while the panel stays open. */
  tickTimes(): void {
    for (const time of this._listNode.querySelectorAll('time')) {
      time.textContent = formatTimes(time.dateTime).relative;
    }
  }

  private _renderVersions(): void {
    const list = this._versions;
    const items: HTMLElement[] = [];
    if (!this._notebook) {
      items.push(
        listItem(
          paragraph(
            'Open a notebook to see its versions.',
            'mlfactory-HistoryPanel-empty'
          )
        )
      );
    } else if (list) {
      items.push(this._renderWorking(list));
      if (list.versions.length === 0) {
        items.push(
          listItem(
            paragraph(
              'No versions yet: save one to keep this state of the notebook.',
              'mlfactory-HistoryPanel-empty'
            )
          )
        );
      }
      for (const version of list.versions) {
        items.push(this._renderVersion(version));
      }
    }
    this._listNode.replaceChildren(...items);
    this._renderCompareBar();
  }

  private _renderWorking(list: IVersionList): HTMLElement {
    const item = document.createElement('li');
    item.className = 'mlfactory-HistoryWorking';
    item.dataset.versionId = WORKING;
    const info = div('mlfactory-HistoryVersion-info');
    const title = div('mlfactory-HistoryVersion-message');
    title.textContent = 'Working copy';
    const meta = div('mlfactory-HistoryVersion-meta');
    meta.textContent =
      list.versions.length === 0
        ? 'Not saved as a version yet'
        : list.dirty
          ? 'Changed since the last version'
          : 'Same as the last version';
    if (list.dirty) {
      item.classList.add('mlfactory-mod-dirty');
    }
    info.append(title, meta);
    item.append(this._selectBox(WORKING, 'the working copy'), info);
    return item;
  }

  private _renderVersion(version: IVersion): HTMLElement {
    const item = document.createElement('li');
    item.className = 'mlfactory-HistoryVersion';
    item.dataset.versionId = version.id;

    const info = div('mlfactory-HistoryVersion-info');
    const message = div('mlfactory-HistoryVersion-message');
    message.textContent = version.message || '(no message)';
    message.title = version.message;

    const meta = div('mlfactory-HistoryVersion-meta');
    const times = formatTimes(version.time);
    const time = document.createElement('time');
    time.dateTime = version.time;
    time.textContent = times.relative;
    time.title = times.absolute;
    time.className = 'mlfactory-HistoryVersion-time';
    // a name and "3 minutes ago"; the id, e-mail and exact time wait in Details
    const author = document.createElement('span');
    author.className = 'mlfactory-HistoryVersion-author';
    author.textContent = version.name || version.author;
    meta.append(time, ' · ', author);
    if (version.automatic) {
      const auto = document.createElement('span');
      auto.className = 'mlfactory-HistoryVersion-auto';
      auto.textContent = 'auto';
      auto.title = 'Saved automatically';
      meta.append(' ', auto);
    }
    info.append(
      message,
      meta,
      detailsView(versionDetails(version), 'mlfactory-history-version-details')
    );

    const restore = button(
      'Restore',
      () => void this._restore(version, restore),
      'reject'
    );
    restore.classList.add('mlfactory-HistoryVersion-restore');
    restore.title = 'Bring the notebook back to this version';
    restore.setAttribute(
      'aria-label',
      `Restore the version “${versionLabel(version)}” from ${times.relative}`
    );

    item.append(
      this._selectBox(version.id, `the version “${versionLabel(version)}”`),
      info,
      restore
    );
    return item;
  }

  private _selectBox(id: string, name: string): HTMLInputElement {
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.className = 'mlfactory-HistoryVersion-select';
    box.checked = this._selected.includes(id);
    box.setAttribute('aria-label', `Select ${name} to compare`);
    box.addEventListener('change', () => {
      this._selected = toggleSelection(this._selected, id);
      for (const other of this._listNode.querySelectorAll<HTMLInputElement>(
        '.mlfactory-HistoryVersion-select'
      )) {
        const item = other.closest('li');
        other.checked = this._selected.includes(item?.dataset.versionId ?? '');
      }
      this._renderCompareBar();
    });
    return box;
  }

  private _renderCompareBar(): void {
    const count = this._selected.length;
    this._compareButton.disabled = count !== 2;
    this._compareHint.textContent =
      count === 2
        ? ''
        : count === 1
          ? 'Tick one more to compare.'
          : 'Tick two versions (or one and the working copy) to compare.';
  }

  private _compare(): void {
    const widget = this._notebook;
    const list = this._versions;
    if (!widget || !list || this._selected.length !== 2) {
      return;
    }
    const [from, to] = orderPair(
      [this._selected[0], this._selected[1]],
      list.versions
    );
    this._openDiff(notebookPath(widget), this._ref(from), this._ref(to));
  }

  private _ref(id: string): IVersionRef {
    const version = this._versions?.versions.find(v => v.id === id);
    return version ? versionRef(version) : workingRef();
  }

  private async _saveVersion(): Promise<void> {
    const widget = this._notebook;
    if (!widget) {
      return;
    }
    const message = this._messageInput.value;
    this._saveButton.disabled = true;
    this._feedback('Saving…');
    try {
      const version = await saveVersion(widget, message);
      if (version) {
        this._messageInput.value = '';
        this._feedback(`Saved the version “${versionLabel(version)}”.`);
      } else {
        this._feedback('Nothing changed since the last version.');
      }
    } catch (error) {
      this._feedback(errorText(error, 'Could not save a version.'), true);
    } finally {
      this._saveButton.disabled = this._notebook === null;
    }
    await this.load();
  }

  private async _restore(
    version: IVersion,
    trigger: HTMLButtonElement
  ): Promise<void> {
    const widget = this._notebook;
    if (!widget) {
      return;
    }
    trigger.disabled = true;
    try {
      if (await restoreVersion(widget, version, this._versions)) {
        this._feedback(
          `Restored the version from ${formatTimes(version.time).relative} as a new version.`
        );
      }
    } catch (error) {
      this._feedback(errorText(error, 'Could not restore the version.'), true);
    } finally {
      trigger.disabled = false;
    }
    await this.load();
  }

  private _feedback(text: string, error = false): void {
    this._feedbackNode.textContent = text;
    this._feedbackNode.classList.toggle('mlfactory-error', error);
  }

  private readonly _tracked: () => boolean;
  private readonly _openDiff: NotebookSection.IOptions['openDiff'];
  private readonly _titleNode: HTMLElement;
  private readonly _messageInput: HTMLInputElement;
  private readonly _saveButton: HTMLButtonElement;
  private readonly _feedbackNode: HTMLElement;
  private readonly _compareButton: HTMLButtonElement;
  private readonly _compareHint: HTMLElement;
  private readonly _listNode: HTMLUListElement;
  private _notebook: NotebookPanel | null = null;
  private _versions: IVersionList | null = null;
  private _selected: string[] = [];
  private _generation = 0;
}

function listItem(...children: HTMLElement[]): HTMLLIElement {
  const item = document.createElement('li');
  item.className = 'mlfactory-HistoryPanel-message';
  item.append(...children);
  return item;
}
