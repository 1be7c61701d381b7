/**
 * The components plugin: the panel in the left area and its commands. Nothing
 * here waits on the server; the panel loads when it is first shown.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';

// style/index.js (the styleModule Lab loads) lists only base.css; importing the
// panel's CSS here loads it either way (webpack includes a module once).

import { componentsAPI } from './api';
import { componentsIcon } from './icon';
import { insertBelowActive } from './notebook';
import { ComponentsPanel } from './panel';

export namespace CommandIDs {
  export const open = 'mlfactory:components-open';
  export const insert = 'mlfactory:components-insert';
  export const publish = 'mlfactory:components-publish';
}

/** After the mlfactory panel (rank 200) in the left area. */
const RANK = 210;

function stringArg(
  args: ReadonlyPartialJSONObject,
  key: string
): string | undefined {
  const value = args[key];
  return typeof value === 'string' && value ? value : undefined;
}

export const componentsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:components',
  description:
    'The component registry panel: search, read, insert and publish components.',
  autoStart: true,
  optional: [
    ILayoutRestorer,
    ICommandPalette,
    INotebookTracker,
    IRenderMimeRegistry
  ],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null,
    rendermime: IRenderMimeRegistry | null
  ): void => {
    const { commands, shell } = app;

    const insertBlocker = (): string | null =>
      tracker?.currentWidget
        ? null
        : 'Open a notebook to insert a component into it';

    const insertRef = async (ref: string): Promise<void> => {
      const notebook = tracker?.currentWidget;
      if (!notebook) {
        throw new Error(insertBlocker() ?? 'No active notebook.');
      }
      const { code } = await componentsAPI.snippet(ref);
      await notebook.context.ready;
      insertBelowActive(notebook, code);
      shell.activateById(notebook.id);
    };

    const panel = new ComponentsPanel({
      api: componentsAPI,
      rendermime,
      insertBlocker,
      insert: insertRef
    });
    shell.add(panel, 'left', { rank: RANK });
    restorer?.add(panel, panel.id);

    const changed = () => {
      panel.updateInsertState();
      commands.notifyCommandChanged(CommandIDs.insert);
    };
    tracker?.currentChanged.connect(changed);
    tracker?.widgetAdded.connect(changed);

    commands.addCommand(CommandIDs.open, {
      label: 'Open Components panel',
      caption: 'Search the component registry',
      icon: componentsIcon,
      execute: args => {
        shell.activateById(panel.id);
        const name = stringArg(args, 'name');
        if (name) {
          return panel.openComponent(name, stringArg(args, 'version'));
        }
        panel.searchInput.focus();
        return undefined;
      }
    });

    commands.addCommand(CommandIDs.insert, {
      label: args =>
        stringArg(args, 'ref')
          ? `Insert ${stringArg(args, 'ref')}`
          : 'Insert component into notebook',
      caption: args =>
        insertBlocker() ??
        `Insert ${stringArg(args, 'ref') ?? 'the component shown in the Components panel'} below the active cell`,
      icon: componentsIcon,
      isEnabled: args =>
        insertBlocker() === null &&
        (stringArg(args, 'ref') ?? panel.currentRef) !== null,
      execute: args => {
        const ref = stringArg(args, 'ref') ?? panel.currentRef;
        return ref ? insertRef(ref) : undefined;
      }
    });

    commands.addCommand(CommandIDs.publish, {
      label: 'Publish component…',
      caption: 'Submit a component folder for review',
      icon: componentsIcon,
      execute: async args => {
        let path = stringArg(args, 'path');
        if (!path) {
          const result = await InputDialog.getText({
            title: 'Publish a component',
            label: 'Folder with component.yaml, relative to the server root',
            placeholder: 'components/my_component'
          });
          if (!result.button.accept || !result.value) {
            return;
          }
          path = result.value;
        }
        shell.activateById(panel.id);
        return panel.publish(path);
      }
    });

    for (const command of [
      CommandIDs.open,
      CommandIDs.insert,
      CommandIDs.publish
    ]) {
      palette?.addItem({ command, category: 'mlfactory' });
    }
  }
};
