/**
 * The main-area view of what changed in a notebook between two versions (or
 * a version and the working copy), drawn by nbdime's notebook diff widget.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Spinner } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';
import { NotebookDiffModel } from 'nbdime/lib/diff/model';
import { CELLDIFF_CLASS, NotebookDiffWidget } from 'nbdime/lib/diff/widget';
import {
  CHUNK_PANEL_CLASS,
  UNCHANGED_DIFF_CLASS
} from 'nbdime/lib/diff/widget/common';

import {
  errorText,
  HistoryError,
  type IDiffResult,
  isAbort,
  requestHistory,
  withQuery
} from './api';
import { historyIcon } from './icon';
import type { IVersionRef } from './versions';

/** nbdime's stylesheets scope their rules under this class. */
const ROOT_CLASS = 'nbdime-root';
const HIDE_OUTPUTS_CLASS = 'mlfactory-mod-hideOutputs';
const HIDE_UNCHANGED_CLASS = 'jp-mod-hideUnchanged';

export namespace HistoryDiff {
  export interface IOptions {
    path: string;
    from: IVersionRef;
    to: IVersionRef;
    rendermime: IRenderMimeRegistry;
    /** Where the diff comes from; defaults to the server extension. */
    fetchDiff?: (signal: AbortSignal) => Promise<IDiffResult>;
  }
}

/**
 * The diff view: a header naming both sides with the "Show outputs" and
 * "Hide unchanged cells" toggles, and nbdime's widget below. The request is
 * cancelled when the view is closed before the answer arrives.
 */
export class HistoryDiff extends Panel {
  constructor(options: HistoryDiff.IOptions) {
    super();
    this.addClass('mlfactory-HistoryDiff');
    this.node.dataset.testid = 'mlfactory-history-diff';
    this.path = options.path;
    this.from = options.from;
    this.to = options.to;
    this._rendermime = options.rendermime;

    this.addWidget(this._renderHeader());
    this._scroller = new Panel();
    this._scroller.addClass(ROOT_CLASS);
    this._scroller.addClass('mlfactory-HistoryDiff-scroller');
    this._scroller.addClass(HIDE_OUTPUTS_CLASS);
    this._scroller.addClass(HIDE_UNCHANGED_CLASS);
    this._scroller.node.tabIndex = -1;
    this.addWidget(this._scroller);

    const spinner = new Spinner();
    this._scroller.addWidget(spinner);

    const fetchDiff =
      options.fetchDiff ??
      ((signal: AbortSignal) =>
        requestHistory<IDiffResult>(
          withQuery('diff', {
            path: options.path,
            from: options.from.id,
            to: options.to.id
          }),
          { signal }
        ));
    this.ready = fetchDiff(this._abort.signal).then(
      data => this._show(data, spinner),
      error => this._fail(error, spinner)
    );
  }

  readonly path: string;
  readonly from: IVersionRef;
  readonly to: IVersionRef;
  /** Settles once the diff (or an error) is drawn, or the view is closed. */
  readonly ready: Promise<void>;

  /** Whether cell outputs are shown (hidden by default). */
  get outputsShown(): boolean {
    return !this._scroller.hasClass(HIDE_OUTPUTS_CLASS);
  }
  set outputsShown(value: boolean) {
    this._scroller.toggleClass(HIDE_OUTPUTS_CLASS, !value);
    this._outputsButton.textContent = value ? 'Hide outputs' : 'Show outputs';
    this._outputsButton.setAttribute('aria-pressed', String(value));
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._abort.abort();
    super.dispose();
  }

  private _renderHeader(): Widget {
    const node = document.createElement('div');
    node.className = 'mlfactory-HistoryDiff-header';

    const controls = document.createElement('div');
    controls.className = 'mlfactory-HistoryDiff-controls';
    this._outputsButton = document.createElement('button');
    this._outputsButton.type = 'button';
    this._outputsButton.className =
      'jp-Button jp-mod-styled jp-mod-reject mlfactory-HistoryDiff-outputs';
    this._outputsButton.textContent = 'Show outputs';
    this._outputsButton.setAttribute('aria-pressed', 'false');
    this._outputsButton.addEventListener('click', () => {
      this.outputsShown = !this.outputsShown;
    });

    const unchanged = document.createElement('label');
    unchanged.className = 'mlfactory-HistoryDiff-unchanged';
    const checkbox = document.createElement('input');
    checkbox.type = 'checkbox';
    checkbox.checked = true;
    checkbox.addEventListener('change', () => {
      this._scroller.toggleClass(HIDE_UNCHANGED_CLASS, checkbox.checked);
    });
    unchanged.append(checkbox, ' Hide unchanged cells');
    controls.append(this._outputsButton, unchanged);

    const banner = document.createElement('div');
    banner.className = 'mlfactory-HistoryDiff-banner';
    const base = document.createElement('span');
    base.className = 'mlfactory-HistoryDiff-base';
    base.textContent = this.from.label;
    const remote = document.createElement('span');
    remote.className = 'mlfactory-HistoryDiff-remote';
    remote.textContent = this.to.label;
    banner.append(base, remote);

    node.append(controls, banner);
    return new Widget({ node });
  }

  private async _show(data: IDiffResult, spinner: Widget): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    spinner.dispose();
    const model = new NotebookDiffModel(data.base, data.diff);
    const widget = new NotebookDiffWidget({
      model,
      rendermime: this._rendermime
    });
    this._scroller.addWidget(widget);
    try {
      await widget.init();
    } catch (reason) {
      // Very deep notebooks can exceed nbdime's recursion while drawing;
      // what is drawn stays useful.
      console.warn('mlfactory: the notebook diff was drawn in part.', reason);
    }
    if (!this.isDisposed) {
      markUnchangedRanges(this._scroller.node);
    }
  }

  private _fail(error: unknown, spinner: Widget): void {
    if (this.isDisposed || isAbort(error)) {
      return;
    }
    spinner.dispose();
    const box = document.createElement('div');
    box.className = 'mlfactory-error mlfactory-HistoryDiff-error';
    box.setAttribute('role', 'alert');
    if (error instanceof HistoryError && error.status === 504) {
      box.textContent = `${errorText(error, 'The diff timed out.')} The comparison took too long; try two versions that are closer together, or try again later.`;
    } else {
      box.textContent = `Could not compare the versions: ${errorText(error, 'unknown error')}`;
    }
    this._scroller.addWidget(new Widget({ node: box }));
  }

  private readonly _abort = new AbortController();
  private readonly _rendermime: IRenderMimeRegistry;
  private readonly _scroller: Panel;
  private _outputsButton!: HTMLButtonElement;
}

/** Wrap a diff view in a closable main-area tab. */
export function createDiffTab(
  options: HistoryDiff.IOptions
): MainAreaWidget<HistoryDiff> {
  const content = new HistoryDiff(options);
  const tab = new MainAreaWidget({ content });
  tab.addClass('mlfactory-HistoryDiffTab');
  tab.title.label = `${options.path.split('/').pop()}: ${shortLabel(options.from)} → ${shortLabel(options.to)}`;
  tab.title.caption = `${options.path}\n${options.from.label} → ${options.to.label}`;
  tab.title.icon = historyIcon;
  tab.title.closable = true;
  return tab;
}

function shortLabel(ref: IVersionRef): string {
  return ref.label.split(' · ', 1)[0];
}

/**
 * Mark where unchanged cells are hidden so CSS can say how many
 * (as nbdime's own JupyterLab extension does).
 */
function markUnchangedRanges(root: HTMLElement): void {
  const cells = root.querySelectorAll(`.${CELLDIFF_CLASS}`);
  let rangeStart = -1;
  for (let i = 0; i < cells.length; ++i) {
    const cell = cells[i];
    if (!cell.classList.contains(UNCHANGED_DIFF_CLASS)) {
      if (rangeStart !== -1) {
        chunkOf(cell).setAttribute(
          'data-nbdime-NCellsHiddenBefore',
          String(i - rangeStart)
        );
        rangeStart = -1;
      }
    } else if (rangeStart === -1) {
      rangeStart = i;
    }
  }
  if (rangeStart !== -1) {
    const hidden = String(cells.length - rangeStart);
    if (rangeStart === 0) {
      (root.querySelector('.jp-Notebook-diff') ?? root).setAttribute(
        'data-nbdime-AllCellsHidden',
        hidden
      );
      return;
    }
    chunkOf(cells[rangeStart - 1]).setAttribute(
      'data-nbdime-NCellsHiddenAfter',
      hidden
    );
  }
}

/** An added or removed cell sits in a chunk panel; the marker goes there. */
function chunkOf(cell: Element): Element {
  const chunk = cell.parentElement?.parentElement;
  return chunk?.classList.contains(CHUNK_PANEL_CLASS) ? chunk : cell;
}
