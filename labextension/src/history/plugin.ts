/**
 * The history plugin: the History panel in the left area, the
 * "Save version" command (Accel Alt S) and the diff tabs.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  Notification
} from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { askVersionMessage, saveVersion } from './actions';
import { errorText, WORKING } from './api';
import { createDiffTab, type HistoryDiff } from './diff';
import { historyIcon } from './icon';
import { HistoryPanel } from './panel';
import { type IVersionRef, versionLabel } from './versions';

// style/index.js (the package's styleModule) does not load this sheet yet.

export namespace CommandIDs {
  export const open = 'mlfactory:history-open';
  export const saveVersion = 'mlfactory:history-save-version';
}

export const historyPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:history',
  description:
    'The History panel: versions of each notebook, their diffs, restore, remote.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ): void => {
    const diffs = new Map<string, MainAreaWidget<HistoryDiff>>();
    const openDiff = (path: string, from: IVersionRef, to: IVersionRef) => {
      const key = JSON.stringify([path, from.id, to.id]);
      const open = diffs.get(key);
      if (open && !open.isDisposed) {
        if (to.id !== WORKING) {
          app.shell.activateById(open.id);
          return;
        }
        open.dispose(); // the working copy may have changed since: compute again
      }
      const tab = createDiffTab({ path, from, to, rendermime });
      tab.id = `mlfactory-history-diff-${++diffCount}`;
      diffs.set(key, tab);
      tab.disposed.connect(() => diffs.delete(key));
      app.shell.add(tab, 'main');
      app.shell.activateById(tab.id);
    };

    const panel = new HistoryPanel({ tracker, openDiff });
    app.shell.add(panel, 'left', { rank: 250 });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show notebook history',
      caption: 'Open the History panel in the left area',
      icon: historyIcon,
      execute: () => app.shell.activateById(panel.id)
    });

    app.commands.addCommand(CommandIDs.saveVersion, {
      label: 'Save version of notebook',
      caption:
        'Save the notebook and keep it as a version in its history (Accel Alt S)',
      icon: historyIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const widget = tracker.currentWidget;
        if (!widget) {
          return;
        }
        const message = await askVersionMessage(widget);
        if (message === null) {
          return;
        }
        try {
          const version = await saveVersion(widget, message);
          if (version) {
            Notification.success(
              `Saved the version “${versionLabel(version)}”.`,
              {
                autoClose: 4000
              }
            );
          } else {
            Notification.info('Nothing changed since the last version.', {
              autoClose: 4000
            });
          }
        } catch (error) {
          Notification.error(
            `Could not save a version: ${errorText(error, 'unknown error')}`,
            { autoClose: 8000 }
          );
        }
        if (widget === panel.notebook) {
          void panel.refreshVersions();
        }
      }
    });

    palette?.addItem({ command: CommandIDs.open, category: 'mlfactory' });
    palette?.addItem({
      command: CommandIDs.saveVersion,
      category: 'mlfactory'
    });
    tracker.currentChanged.connect(() =>
      app.commands.notifyCommandChanged(CommandIDs.saveVersion)
    );
  }
};

let diffCount = 0;
