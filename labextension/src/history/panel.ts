/**
 * The History panel in the left area: the versions of the active notebook,
 * saving, comparing and restoring them, and the workspace's remote and
 * settings. Server data is fetched while the panel is shown, never at start-up.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { restoreVersion, saveVersion, notebookPath } from './actions';
import {
  errorText,
  type IHistoryStatus,
  type IVersion,
  type IVersionList,
  requestHistory,
  WORKING,
  withQuery
} from './api';
import { addFact, button, div, errorBox, paragraph } from './dom';
import { historyIcon } from './icon';
import { RemoteSection } from './remote';
import { SettingsSection } from './settings';
import {
  formatTimes,
  type IVersionRef,
  orderPair,
  toggleSelection,
  versionRef,
  workingRef
} from './versions';

const VERSION_LIMIT = 100;

export namespace HistoryPanel {
  export interface IOptions {
    tracker: INotebookTracker;
    /** Open the diff of `path` between two versions in the main area. */
    openDiff: (path: string, from: IVersionRef, to: IVersionRef) => void;
  }
}

export class HistoryPanel extends Widget {
  constructor(options: HistoryPanel.IOptions) {
    super();
    this._tracker = options.tracker;
    this._openDiff = options.openDiff;
    this.id = 'mlfactory-history';
    this.addClass('mlfactory-Sidebar');
    this.addClass('mlfactory-HistoryPanel');
    this.node.dataset.testid = 'mlfactory-history';
    this.title.icon = historyIcon;
    this.title.caption = 'Notebook history';

    const header = document.createElement('header');
    header.className = 'mlfactory-Sidebar-header';
    const heading = document.createElement('h2');
    heading.textContent = 'History';
    header.appendChild(heading);

    this._statusNode = div('mlfactory-HistoryPanel-status');
    this._notebookNode = this._buildNotebookSection();
    this._remote = new RemoteSection({
      reloadStatus: () => this._loadStatus(),
      pulled: () => this._reloadOpenNotebooks()
    });
    this._settings = new SettingsSection({
      saved: settings => {
        if (this._status) {
          this._status = { ...this._status, ...settings };
        }
      }
    });
    const body = div('mlfactory-Sidebar-body');
    body.append(
      this._statusNode,
      this._notebookNode,
      this._remote.node,
      this._settings.node
    );
    this.node.append(header, body);
    this._showTracked(false);

    this._tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._onCurrentChanged();
  }

  /** The notebook whose history is shown. */
  get notebook(): NotebookPanel | null {
    return this._notebook;
  }

  /** Fetch the workspace status and the notebook's versions again. */
  async refresh(): Promise<void> {
    await this._loadStatus();
    if (this._status?.repository) {
      await this._loadVersions();
    }
  }

  /** Fetch the versions of the current notebook again (if shown). */
  refreshVersions(): Promise<void> {
    if (!this.isVisible) {
      this._stale = true;
      return Promise.resolve();
    }
    return this._loadVersions();
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._watch(null);
    Signal.clearData(this);
    window.clearInterval(this._clock);
    super.dispose();
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (!this._status || this._stale) {
      this._stale = false;
      void this.refresh();
    }
    window.clearInterval(this._clock);
    this._clock = window.setInterval(() => this._tickTimes(), 60_000);
  }

  protected override onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    window.clearInterval(this._clock);
  }

  // --- the active notebook ------------------------------------------------

  private _onCurrentChanged(): void {
    const widget = this._tracker.currentWidget;
    if (widget === this._notebook) {
      return;
    }
    this._watch(widget);
    this._generation++; // answers for the previous notebook are dropped
    this._selected = [];
    this._versions = null;
    this._feedback('');
    this._renderNotebookTitle();
    this._renderVersions();
    if (widget) {
      void widget.context.ready.then(() => {
        if (widget === this._notebook) {
          this._renderNotebookTitle();
          void this.refreshVersions();
        }
      });
    }
  }

  private _watch(widget: NotebookPanel | null): void {
    if (this._notebook) {
      this._notebook.context.fileChanged.disconnect(this._onFileChanged, this);
      this._notebook.context.pathChanged.disconnect(this._onPathChanged, this);
    }
    this._notebook = widget;
    if (widget) {
      widget.context.fileChanged.connect(this._onFileChanged, this);
      widget.context.pathChanged.connect(this._onPathChanged, this);
    }
  }

  /** After a save (or a reload) the file on disk may differ from its versions. */
  private _onFileChanged(): void {
    void this.refreshVersions();
  }

  private _onPathChanged(): void {
    this._selected = [];
    this._renderNotebookTitle();
    void this.refreshVersions();
  }

  // --- workspace status -----------------------------------------------------

  private async _loadStatus(): Promise<void> {
    if (!this._status) {
      this._statusNode.replaceChildren(
        paragraph('Loading…', 'mlfactory-loading')
      );
    }
    try {
      this._status = await requestHistory<IHistoryStatus>('status');
    } catch (error) {
      this._statusNode.replaceChildren(
        errorBox(errorText(error, 'Could not load the history status.')),
        button('Retry', () => void this.refresh(), 'reject')
      );
      this._showTracked(false);
      return;
    }
    this._renderStatus();
  }

  private _renderStatus(): void {
    const status = this._status;
    if (!status) {
      return;
    }
    const nodes: HTMLElement[] = [];
    if (!status.repository) {
      nodes.push(
        paragraph(
          'Versions of your notebooks are not kept yet. Start tracking to save versions, compare them and go back to an earlier one.'
        )
      );
      const start = button(
        'Start tracking this workspace',
        () => void this._init(start),
        'accept'
      );
      start.classList.add('mlfactory-HistoryPanel-start');
      start.dataset.testid = 'mlfactory-history-init';
      nodes.push(start);
    } else {
      const facts = document.createElement('dl');
      facts.className = 'mlfactory-Sidebar-facts';
      if (status.branch) {
        addFact(facts, 'Branch', status.branch, 'mlfactory-history-branch');
      }
      addFact(
        facts,
        'Saved as',
        status.author.email
          ? `${status.author.name} <${status.author.email}>`
          : status.author.name,
        'mlfactory-history-author'
      );
      nodes.push(facts);
    }
    if (status.jupyterlab_git) {
      const note = paragraph(
        'The Git panel (jupyterlab-git) works on the same repository: versions saved here show up there as commits.',
        'mlfactory-HistoryPanel-note'
      );
      note.dataset.testid = 'mlfactory-history-git-note';
      nodes.push(note);
    }
    this._statusNode.replaceChildren(...nodes);
    this._showTracked(status.repository);
    this._remote.fill(status);
    this._settings.fill(status);
  }

  private async _init(start: HTMLButtonElement): Promise<void> {
    start.disabled = true;
    start.textContent = 'Starting…';
    try {
      this._status = await requestHistory<IHistoryStatus>('init', {
        method: 'POST'
      });
    } catch (error) {
      start.disabled = false;
      start.textContent = 'Start tracking this workspace';
      void showErrorMessage(
        'Could not start tracking',
        errorText(error, 'The server refused to start tracking.')
      );
      return;
    }
    this._renderStatus();
    await this._loadVersions();
  }

  private _showTracked(tracked: boolean): void {
    for (const node of [
      this._notebookNode,
      this._remote.node,
      this._settings.node
    ]) {
      node.hidden = !tracked;
    }
  }

  // --- the notebook's versions ----------------------------------------------

  private _buildNotebookSection(): HTMLElement {
    const section = document.createElement('section');
    section.className =
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

    section.append(
      this._titleNode,
      form,
      this._feedbackNode,
      compare,
      this._listNode
    );
    return section;
  }

  private _renderNotebookTitle(): void {
    const widget = this._notebook;
    this._titleNode.textContent = widget
      ? notebookPath(widget) || widget.context.path
      : 'No notebook';
    this._titleNode.title = widget ? notebookPath(widget) : '';
    const enabled = widget !== null;
    this._messageInput.disabled = !enabled;
    this._saveButton.disabled = !enabled;
  }

  private async _loadVersions(): Promise<void> {
    const widget = this._notebook;
    if (!widget || !this._status?.repository) {
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
          button('Retry', () => void this._loadVersions(), 'reject')
        )
      );
      this._renderCompareBar();
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
    const author = document.createElement('span');
    author.className = 'mlfactory-HistoryVersion-author';
    author.textContent = version.author;
    author.title = version.email;
    const short = document.createElement('code');
    short.className = 'mlfactory-HistoryVersion-id';
    short.textContent = version.short;
    short.title = version.id;
    meta.append(time, ' · ', author, ' · ', short);
    if (version.automatic) {
      const auto = document.createElement('span');
      auto.className = 'mlfactory-HistoryVersion-auto';
      auto.textContent = 'auto';
      auto.title = 'Saved automatically';
      meta.append(' ', auto);
    }
    info.append(message, meta);

    const restore = button(
      'Restore',
      () => void this._restore(version, restore),
      'reject'
    );
    restore.classList.add('mlfactory-HistoryVersion-restore');
    restore.title = 'Bring the notebook back to this version';
    restore.setAttribute(
      'aria-label',
      `Restore version ${version.short}: ${version.message}`
    );

    item.append(this._selectBox(version.id, version.short), info, restore);
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
        this._feedback(`Saved version ${version.short}.`);
      } else {
        this._feedback('Nothing changed since the last version.');
      }
    } catch (error) {
      this._feedback(errorText(error, 'Could not save a version.'), true);
    } finally {
      this._saveButton.disabled = this._notebook === null;
    }
    await this._loadVersions();
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
        this._feedback(`Restored ${version.short} as a new version.`);
      }
    } catch (error) {
      this._feedback(errorText(error, 'Could not restore the version.'), true);
    } finally {
      trigger.disabled = false;
    }
    await this._loadVersions();
  }

  private _feedback(text: string, error = false): void {
    this._feedbackNode.textContent = text;
    this._feedbackNode.classList.toggle('mlfactory-error', error);
  }

  /** Keep "3 minutes ago" true while the panel stays open. */
  private _tickTimes(): void {
    for (const time of this._listNode.querySelectorAll('time')) {
      time.textContent = formatTimes(time.dateTime).relative;
    }
  }

  /**
   * Show pulled content in the open notebooks; those with unsaved edits are
   * left alone (JupyterLab asks about the newer file when they are saved).
   *
   * @returns the paths of the notebooks not reloaded.
   */
  private async _reloadOpenNotebooks(): Promise<string[]> {
    const reloads: Promise<void>[] = [];
    const skipped: string[] = [];
    this._tracker.forEach(widget => {
      if (widget.context.model.dirty) {
        skipped.push(notebookPath(widget));
      } else {
        reloads.push(widget.context.revert());
      }
    });
    await Promise.allSettled(reloads);
    await this._loadVersions();
    return skipped;
  }

  private readonly _tracker: INotebookTracker;
  private readonly _openDiff: HistoryPanel.IOptions['openDiff'];
  private readonly _statusNode: HTMLElement;
  private readonly _notebookNode: HTMLElement;
  private readonly _remote: RemoteSection;
  private readonly _settings: SettingsSection;
  private _titleNode!: HTMLElement;
  private _messageInput!: HTMLInputElement;
  private _saveButton!: HTMLButtonElement;
  private _feedbackNode!: HTMLElement;
  private _compareButton!: HTMLButtonElement;
  private _compareHint!: HTMLElement;
  private _listNode!: HTMLUListElement;
  private _notebook: NotebookPanel | null = null;
  private _status: IHistoryStatus | null = null;
  private _versions: IVersionList | null = null;
  private _selected: string[] = [];
  private _generation = 0;
  private _stale = false;
  private _clock = 0;
}

function listItem(...children: HTMLElement[]): HTMLLIElement {
  const item = document.createElement('li');
  item.className = 'mlfactory-HistoryPanel-message';
  item.append(...children);
  return item;
}
