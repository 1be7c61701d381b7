/**
 * Ctrl+S on a collaborative document without a spurious "File Changed" dialog.
 *
 * Before each save JupyterLab compares the hash it last heard for the file with the hash
 * on disk, and asks "Overwrite or revert?" when they differ. Under real-time
 * collaboration the room (jupyter-server-ydoc) writes the file itself, 1 s after the last
 * change, and tells the pages the new hash afterwards over the WebSocket. A Ctrl+S (or the
 * History's "Save version", or the stop-notice's save) during that save, or in the
 * moment before the page hears of it, finds a hash the page does not know yet: the dialog
 * appears for a notebook nobody else touched (jupytext#1447, open upstream). A paired
 * notebook's save is two writes and a conversion long, so it happens often there.
 *
 * The dialog offers nothing under collaboration: the save is the room's, and the room
 * checks the file itself before writing (a file changed behind it is loaded into the room,
 * never overwritten). So for a collaborative document a conflict is answered as
 * "Overwrite" answers it: ask the room to save. Documents without collaboration keep
 * JupyterLab's dialog. `tests/e2e/test_collaborative_save.py` saves during the room's own save.
 */
import type { JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Context } from '@jupyterlab/docregistry';
import type { Contents } from '@jupyterlab/services';

/** The private parts of JupyterLab 4's `Context` this relies on. */
interface IContextInternals {
  _raiseConflict(
    model: Contents.IModel,
    options: Partial<Contents.IModel>
  ): Promise<Contents.IModel>;
  _model?: { collaborative?: boolean };
  _manager: {
    contents: {
      save(
        path: string,
        options: Partial<Contents.IModel> & { contentProviderId?: string }
      ): Promise<Contents.IModel>;
    };
  };
  _path: string;
  _contentProviderId?: string;
}

const PATCHED = Symbol.for('mlfactory:collaborative-save');

/**
 * Answer save conflicts of collaborative documents by saving through the room; false
 * when this JupyterLab's `Context` no longer has the method (the dialog stays).
 */
export function saveCollaborativeDocumentsThroughTheRoom(): boolean {
  const proto = Context.prototype as unknown as IContextInternals &
    Record<symbol, boolean>;
  if (proto[PATCHED]) {
    return true;
  }
  const raiseConflict = proto._raiseConflict;
  if (typeof raiseConflict !== 'function') {
    console.warn(
      'mlfactory: JupyterLab changed its save check; collaborative saves keep the File Changed dialog.'
    );
    return false;
  }
  proto._raiseConflict = function (
    this: IContextInternals,
    model: Contents.IModel,
    options: Partial<Contents.IModel>
  ): Promise<Contents.IModel> {
    if (!this._model?.collaborative) {
      return raiseConflict.call(this, model, options);
    }
    // the room's own save (or a change the room will load) is newer than this page knows
    console.info(
      `mlfactory: ${this._path} on disk is newer than this page knows; saving through the room.`
    );
    return this._manager.contents.save(this._path, {
      ...options,
      contentProviderId: this._contentProviderId
    });
  };
  proto[PATCHED] = true;
  return true;
}

export const collaborativeSavePlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:collaborative-save',
  description:
    'Saves collaborative documents through their room instead of asking "File Changed".',
  autoStart: true,
  activate: (): void => {
    saveCollaborativeDocumentsThroughTheRoom();
  }
};
