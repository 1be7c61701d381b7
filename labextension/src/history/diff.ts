/**
 * The main-area view of what changed in a notebook between two versions (or
 * a version and the working copy), drawn by nbdime's notebook diff widget.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Spinner } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';
import { type CellDiffModel, NotebookDiffModel } from 'nbdime/lib/diff/model';
import {
  CELLDIFF_CLASS,
  CellDiffWidget,
  MetadataDiffWidget,
  NotebookDiffWidget
} from 'nbdime/lib/diff/widget';
import {
  ADDED_CHUNK_PANEL_CLASS,
  CHUNK_PANEL_CLASS,
  REMOVED_CHUNK_PANEL_CLASS,
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
import {
  cellName,
  cellTitle,
  type ICellSides,
  listNames,
  numberCells
} from './cells';
import { detailsView } from './dom';
import { historyIcon } from './icon';
import { formatTimes, type IVersionRef, versionDetails } from './versions';

/** nbdime's stylesheets scope their rules under this class. */
const ROOT_CLASS = 'nbdime-root';
const HIDE_OUTPUTS_CLASS = 'mlfactory-mod-hideOutputs';
const HIDE_UNCHANGED_CLASS = 'jp-mod-hideUnchanged';
/** Where nbdime writes "Cell ID: <id>" in a cell's header. */
const CELL_ID_CLASS = 'jp-Cellrow-header-cellId';

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
    banner.append(
      sideLabel(this.from, 'mlfactory-HistoryDiff-base'),
      sideLabel(this.to, 'mlfactory-HistoryDiff-remote')
    );

    // the ids, names and exact times git keeps, for those who want them
    const facts: [string, string][] = [];
    for (const [side, ref] of [
      ['Older', this.from],
      ['Newer', this.to]
    ] as const) {
      if (ref.version) {
        for (const [term, value] of versionDetails(ref.version)) {
          facts.push([`${side}: ${term.toLowerCase()}`, value]);
        }
      } else {
        facts.push([`${side}`, 'the working copy (not saved as a version)']);
      }
    }
    node.append(
      controls,
      banner,
      detailsView(facts, 'mlfactory-history-diff-details')
    );
    return new Widget({ node });
  }

  private async _show(data: IDiffResult, spinner: Widget): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    spinner.dispose();
    let widget: NumberedNotebookDiff;
    try {
      widget = new NumberedNotebookDiff({
        model: new NotebookDiffModel(data.base, data.diff),
        rendermime: this._rendermime
      });
    } catch (reason) {
      // the diff does not fit its notebook: nothing can be drawn
      console.error('mlfactory: the notebook diff could not be read.', reason);
      this._alert(
        `These versions could not be shown side by side (${String(reason)}). Compare other versions, or restore one to see it whole.`
      );
      return;
    }
    this._scroller.addWidget(widget);
    try {
      await widget.init();
    } catch (reason) {
      widget.failed.push(`Part of the notebook (${String(reason)})`);
    }
    if (this.isDisposed) {
      return;
    }
    markUnchangedRanges(this._scroller.node);
    if (widget.failed.length) {
      const names = listNames(widget.failed);
      this._alert(
        `${names} could not be drawn in this comparison; the rest is shown. Restore the version to see ${widget.failed.length > 1 ? 'them' : 'it'} whole in the notebook.`,
        'mlfactory-history-diff-partial'
      );
    }
  }

  /** A message the user sees above the diff (not only in the console). */
  private _alert(text: string, testid = 'mlfactory-history-diff-error'): void {
    const box = document.createElement('div');
    box.className = 'mlfactory-error mlfactory-HistoryDiff-error';
    box.setAttribute('role', 'alert');
    box.dataset.testid = testid;
    box.textContent = text;
    this._scroller.insertWidget(0, new Widget({ node: box }));
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

/** A tab title's side: the version's message (shortened), or "Working copy". */
function shortLabel(ref: IVersionRef): string {
  return ref.label.length > 24 ? `${ref.label.slice(0, 23)}…` : ref.label;
}

/** One side of the banner: the message and "3 minutes ago · Ada" (exact time on hover). */
function sideLabel(ref: IVersionRef, className: string): HTMLElement {
  const node = document.createElement('span');
  node.className = className;
  const title = document.createElement('span');
  title.className = 'mlfactory-HistoryDiff-label';
  title.textContent = ref.label;
  node.append(title);
  if (ref.version) {
    const times = formatTimes(ref.version.time);
    const time = document.createElement('time');
    time.dateTime = ref.version.time;
    time.title = times.absolute;
    time.textContent = times.relative;
    const meta = document.createElement('span');
    meta.className = 'mlfactory-HistoryDiff-meta';
    meta.append(time, ` · ${ref.version.name || ref.version.author}`);
    node.append(meta);
  }
  return node;
}

/**
 * nbdime's notebook diff that names cells by number ("Cell 3", not their
 * ids) and keeps drawing when one cell cannot be drawn: that cell becomes a
 * note and is listed in `failed` (nbdime's own loop stops at the first).
 */
class NumberedNotebookDiff extends NotebookDiffWidget {
  constructor(options: {
    model: NotebookDiffModel;
    rendermime: IRenderMimeRegistry;
  }) {
    super(options);
    this._mime = options.rendermime;
  }

  /** The names of the parts that could not be drawn ("Cell 3"). */
  readonly failed: string[] = [];

  override async init(): Promise<void> {
    const model = this.model;
    const sides = numberCells(model.cells);
    const numbers = new Map<CellDiffModel, ICellSides>(
      model.cells.map((cell, i) => [cell, sides[i]])
    );
    if (model.metadata) {
      try {
        this.addWidget(
          new MetadataDiffWidget({
            model: model.metadata,
            editorFactory: this._editorFactory,
            translator: this._translator,
            ...this._viewOptions
          })
        );
      } catch (reason) {
        this._failed('The notebook metadata', reason);
      }
    }
    for (const chunk of model.chunkedCells) {
      if (this.isDisposed) {
        return;
      }
      if (chunk.length === 1 && !(chunk[0].added || chunk[0].deleted)) {
        this.addWidget(this._cell(chunk[0], numbers));
      } else {
        const chunkPanel = new Panel();
        chunkPanel.addClass(CHUNK_PANEL_CLASS);
        const added = new Panel();
        added.addClass(ADDED_CHUNK_PANEL_CLASS);
        const removed = new Panel();
        removed.addClass(REMOVED_CHUNK_PANEL_CLASS);
        for (const cell of chunk) {
          (cell.deleted ? removed : added).addWidget(this._cell(cell, numbers));
        }
        chunkPanel.addWidget(added);
        chunkPanel.addWidget(removed);
        this.addWidget(chunkPanel);
      }
      // one chunk a frame, as nbdime does, so a long notebook never freezes the page
      await new Promise(resolve => requestAnimationFrame(resolve));
    }
  }

  private _cell(
    cell: CellDiffModel,
    numbers: Map<CellDiffModel, ICellSides>
  ): Widget {
    const sides = numbers.get(cell) ?? { base: null, remote: null };
    try {
      const widget = new CellDiffWidget({
        model: cell,
        rendermime: this._mime,
        mimetype: this.model.mimetype,
        editorFactory: this._editorFactory,
        translator: this._translator,
        ...this._viewOptions
      });
      numberHeader(widget, cell, sides);
      return widget;
    } catch (reason) {
      const name = cellName(sides);
      this._failed(name, reason);
      const note = document.createElement('div');
      note.className = `${CELLDIFF_CLASS} mlfactory-HistoryDiff-cellError`;
      note.setAttribute('role', 'note');
      note.textContent = `${name} could not be drawn here.`;
      return new Widget({ node: note });
    }
  }

  private _failed(name: string, reason: unknown): void {
    this.failed.push(name);
    console.warn(
      `mlfactory: ${name} of the notebook diff was not drawn.`,
      reason
    );
  }

  private readonly _mime: IRenderMimeRegistry;
}

/**
 * Put "Cell N" where nbdime writes "Cell ID: <id>" (one label per side the
 * cell exists on), adding the header row when nbdime drew none (no ids).
 */
function numberHeader(
  widget: Widget,
  cell: CellDiffModel,
  sides: ICellSides
): void {
  const labels: number[] = [];
  if (!cell.added && sides.base !== null) {
    labels.push(sides.base);
  }
  if (!cell.deleted && sides.remote !== null) {
    labels.push(sides.remote);
  }
  const ids = widget.node.querySelectorAll<HTMLElement>(`.${CELL_ID_CLASS}`);
  if (ids.length === labels.length) {
    ids.forEach((node, i) => {
      node.textContent = cellTitle(labels[i]);
    });
    return;
  }
  ids.forEach(node => node.remove());
  const header = document.createElement('div');
  header.className = 'mlfactory-HistoryDiff-cellNumbers';
  for (const n of labels) {
    const label = document.createElement('span');
    label.className = CELL_ID_CLASS;
    label.textContent = cellTitle(n);
    header.append(label);
  }
  widget.node.prepend(header);
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
