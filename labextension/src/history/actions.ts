/**
 * What the panel and the commands do to a notebook's history: save a version
 * (after saving the notebook) and restore one (after asking).
 */
import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import {
  HistoryError,
  type IVersion,
  type IVersionList,
  requestHistory
} from './api';
import { formatTimes, versionLabel } from './versions';

/** The server path of an open notebook (without a drive prefix). */
export function notebookPath(widget: NotebookPanel): string {
  return widget.context.localPath;
}

/**
 * Save the notebook, then record it as a version (an empty message becomes
 * "Version of <date and time>").
 *
 * @returns the new version, or null when nothing changed since the last one.
 */
export async function saveVersion(
  widget: NotebookPanel,
  message: string
): Promise<IVersion | null> {
  await saveIfDirty(widget);
  try {
    const answer = await requestHistory<{ version: IVersion }>('versions', {
      method: 'POST',
      json: {
        path: notebookPath(widget),
        message: message.trim() || `Version of ${new Date().toLocaleString()}`
      }
    });
    return answer.version;
  } catch (error) {
    if (error instanceof HistoryError && error.status === 409) {
      return null;
    }
    throw error;
  }
}

/** Ask for a version message; null when the user cancels. */
export async function askVersionMessage(
  widget: NotebookPanel
): Promise<string | null> {
  const result = await InputDialog.getText({
    title: `Save a version of ${widget.context.localPath.split('/').pop()}`,
    label: 'What changed?',
    placeholder: 'e.g. Cleaned the input data',
    okLabel: 'Save version'
  });
  if (!result.button.accept) {
    return null;
  }
  return result.value ?? '';
}

/**
 * Restore `version` of the open notebook after the user confirms: unsaved
 * edits are saved first (the server keeps changes since the last version as
 * a version of their own), the server writes the old content as a new
 * version, and the notebook is reloaded from disk.
 *
 * @returns false when the user cancelled.
 */
export async function restoreVersion(
  widget: NotebookPanel,
  version: IVersion,
  list: IVersionList | null
): Promise<boolean> {
  const unsaved = widget.context.model.dirty;
  const unversioned = unsaved || (list?.dirty ?? false);
  const body = document.createElement('div');
  body.className = 'mlfactory-HistoryDialog';
  const intro = document.createElement('p');
  intro.textContent = `Restore “${versionLabel(version)}” from ${formatTimes(version.time).absolute}?`;
  const effect = document.createElement('p');
  effect.textContent =
    'This creates a new version with the notebook as it was then — no version is lost — and reloads the notebook from disk.';
  body.append(intro, effect);
  if (unversioned) {
    const keep = document.createElement('p');
    keep.textContent =
      'Your changes since the last version are kept as a version of their own first.';
    body.append(keep);
  }
  const answer = await showDialog({
    title: 'Restore this version?',
    body: new Widget({ node: body }),
    buttons: [
      Dialog.cancelButton(),
      Dialog.warnButton({ label: 'Restore', ariaLabel: 'Restore version' })
    ]
  });
  if (!answer.button.accept) {
    return false;
  }

  await saveIfDirty(widget);
  await requestHistory<{ version: IVersion }>('restore', {
    method: 'POST',
    json: { path: notebookPath(widget), version: version.id }
  });
  await widget.context.revert();
  return true;
}

/** How long to wait for a collaboration room's own save before saving here. */
const ROOM_SAVE_WAIT_MS = 15_000;

async function saveIfDirty(widget: NotebookPanel): Promise<void> {
  const { context } = widget;
  if (
    context.model.collaborative &&
    context.contentsModel &&
    (await roomSaved(widget))
  ) {
    return;
  }
  if (context.model.dirty || !context.contentsModel) {
    await context.save();
  }
}

/**
 * Under real-time collaboration the server's room writes the notebook itself
 * (`YDocExtension.document_save_delay` after the last change) and clears the
 * shared `dirty` flag. Saving from here as well races that write and can end
 * in JupyterLab's "File Changed" dialog (jupyter-collaboration compares file
 * hashes), so wait for the room instead.
 *
 * @returns false when the room did not save in time (its autosave can be off).
 */
function roomSaved(widget: NotebookPanel): Promise<boolean> {
  const model = widget.context.model;
  if (!model.dirty) {
    return Promise.resolve(true);
  }
  return new Promise(resolve => {
    const done = (saved: boolean) => {
      clearTimeout(timer);
      model.stateChanged.disconnect(onChange);
      resolve(saved);
    };
    const onChange = () => {
      if (!model.dirty) {
        done(true);
      }
    };
    const timer = setTimeout(() => done(false), ROOM_SAVE_WAIT_MS);
    model.stateChanged.connect(onChange);
  });
}
