/**
 * The History panel in the left area: the versions of the active notebook,
 * saving, comparing and restoring them, and the workspace's remote and
 * settings. Server data is fetched while the panel is shown, never at start-up.
 *
 * The panel follows the active notebook and owns the workspace status (and
 * starting to track); its sections are `NotebookSection` (the notebook's
 * versions), `RemoteSection` and `SettingsSection`.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { notebookPath } from './actions';
import { errorText, type IHistoryStatus, requestHistory } from './api';
import { addFact, button, detailsView, div, errorBox, paragraph } from './dom';
import { historyIcon } from './icon';
import { NotebookSection } from './notebook';
import { RemoteSection } from './remote';
import { SettingsSection } from './settings';
import type { IVersionRef } from './versions';

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
    this._notebookSection = new NotebookSection({
      tracked: () => this._status?.repository ?? false,
      openDiff: options.openDiff
    });
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
      this._notebookSection.node,
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
      await this._notebookSection.load();
    }
  }

  /** Fetch the versions of the current notebook again (if shown). */
  refreshVersions(): Promise<void> {
    if (!this.isVisible) {
      this._stale = true;
      return Promise.resolve();
    }
    return this._notebookSection.load();
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
    this._clock = window.setInterval(
      () => this._notebookSection.tickTimes(),
      60_000
    );
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
    this._notebookSection.show(widget);
    if (widget) {
      void widget.context.ready.then(() => {
        if (widget === this._notebook) {
          this._notebookSection.renderTitle();
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
    this._notebookSection.pathChanged();
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
      // the name people know; the branch and the e-mail git records wait in Details
      const facts = document.createElement('dl');
      facts.className = 'mlfactory-Sidebar-facts';
      addFact(
        facts,
        'Saved as',
        status.author.name,
        'mlfactory-history-author'
      );
      const details: [string, string][] = [];
      if (status.branch) {
        details.push(['Branch', status.branch]);
      }
      if (status.author.email) {
        details.push(['E-mail', status.author.email]);
      }
      nodes.push(facts, detailsView(details, 'mlfactory-history-details'));
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
    await this._notebookSection.load();
  }

  private _showTracked(tracked: boolean): void {
    for (const node of [
      this._notebookSection.node,
      this._remote.node,
      this._settings.node
    ]) {
      node.hidden = !tracked;
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
    await this._notebookSection.load();
    return skipped;
  }

  private readonly _tracker: INotebookTracker;
  private readonly _statusNode: HTMLElement;
  private readonly _notebookSection: NotebookSection;
  private readonly _remote: RemoteSection;
  private readonly _settings: SettingsSection;
  private _notebook: NotebookPanel | null = null;
  private _status: IHistoryStatus | null = null;
  private _stale = false;
  private _clock = 0;
}
