/**
 * The models plugin: "Publish model" in each notebook's toolbar, as a
 * command and in the palette; the Models panel in the left area.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ToolbarButton } from '@jupyterlab/apputils';
import type { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookTracker, type NotebookPanel } from '@jupyterlab/notebook';
import type { IDisposable } from '@lumino/disposable';

import { publishModel } from './dialog';
import { modelsIcon } from './icon';
import { ModelsPanel } from './panel';

export namespace CommandIDs {
  export const publish = 'mlfactory:publish-model';
  export const open = 'mlfactory:models-open';
}

export const modelsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:models',
  description:
    'Publish a model from a notebook’s kernel; the Models panel (versions, aliases, snippets).',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ): void => {
    const panel = new ModelsPanel({
      openFile: path => void app.commands.execute('docmanager:open', { path })
    });
    app.shell.add(panel, 'left', { rank: 270 });
    restorer?.add(panel, panel.id);

    /** The notebook to publish from: the command's `path`, else the current one. */
    const target = (args: Record<string, unknown>): NotebookPanel | null => {
      if (typeof args.path === 'string' && args.path) {
        return tracker.find(p => p.context.path === args.path) ?? null;
      }
      return tracker.currentWidget;
    };

    app.commands.addCommand(CommandIDs.publish, {
      label: 'Publish model…',
      caption:
        'Publish a model from this notebook’s kernel as a new served version',
      icon: modelsIcon,
      isEnabled: args => target(args) !== null,
      execute: async args => {
        const notebook = target(args);
        if (!notebook) {
          return;
        }
        await notebook.sessionContext.ready;
        if (notebook.context.model.dirty) {
          await notebook.context.save();
        }
        await publishModel(
          notebook.sessionContext.session?.kernel,
          notebook.context.path,
          () => app.shell.activateById(panel.id)
        );
      }
    });
    app.commands.addCommand(CommandIDs.open, {
      label: 'Show published models',
      caption: 'Open the Models panel',
      icon: modelsIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: CommandIDs.publish, category: 'mlfactory' });
    palette?.addItem({ command: CommandIDs.open, category: 'mlfactory' });

    app.docRegistry.addWidgetExtension('Notebook', new PublishButton(app));
  }
};

/** The "Publish model" button in each notebook's toolbar. */
class PublishButton implements DocumentRegistry.IWidgetExtension<
  NotebookPanel,
  never
> {
  constructor(private _app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      icon: modelsIcon,
      label: 'Publish model',
      tooltip: 'Publish a model from this notebook’s kernel',
      onClick: () =>
        void this._app.commands.execute(CommandIDs.publish, {
          path: panel.context.path
        })
    });
    button.node.dataset.testid = 'mlfactory-publish-model-button';
    if (
      !panel.toolbar.insertAfter('cellType', 'mlfactory-publish-model', button)
    ) {
      panel.toolbar.addItem('mlfactory-publish-model', button);
    }
    return button;
  }
}
