/**
 * Putting a component's snippet into a notebook: a new code cell below the
 * active one, or wherever a dragged result is dropped.
 */
import type * as nbformat from '@jupyterlab/nbformat';
import { NotebookActions, type NotebookPanel } from '@jupyterlab/notebook';
import { MimeData } from '@lumino/coreutils';
import { Drag } from '@lumino/dragdrop';

/** The MIME type notebooks accept on `lm-drop` (cells copied between notebooks). */
export const CELLS_MIME = 'application/vnd.jupyter.cells';

export function codeCell(code: string): nbformat.ICodeCell {
  return {
    cell_type: 'code',
    source: code,
    metadata: {},
    outputs: [],
    execution_count: null
  };
}

/**
 * Insert `code` as a code cell below the active cell (at the end when none is
 * active), make it the active cell and return its index.
 */
export function insertBelowActive(panel: NotebookPanel, code: string): number {
  const notebook = panel.content;
  const model = notebook.model;
  if (!model) {
    throw new Error('The notebook is still loading.');
  }
  const index =
    notebook.activeCellIndex < 0
      ? model.cells.length
      : notebook.activeCellIndex + 1;
  model.sharedModel.insertCell(index, {
    cell_type: 'code',
    source: code,
    metadata: {}
  });
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  notebook.mode = 'command';
  void NotebookActions.focusActiveCell(notebook);
  return index;
}

/**
 * Start dragging a code cell holding `code`; a notebook inserts it where it
 * is dropped. Resolves with the drop action ('none' when dropped elsewhere).
 */
export function dragCodeCell(
  code: string,
  label: string,
  clientX: number,
  clientY: number,
  source: unknown
): Promise<Drag.DropAction> {
  const dragImage = document.createElement('div');
  dragImage.className = 'mlfactory-Components-dragImage';
  dragImage.textContent = label;
  const mimeData = new MimeData();
  mimeData.setData(CELLS_MIME, [codeCell(code)]);
  mimeData.setData('text/plain', code);
  const drag = new Drag({
    mimeData,
    dragImage,
    proposedAction: 'copy',
    supportedActions: 'copy',
    source
  });
  return drag.start(clientX, clientY);
}
