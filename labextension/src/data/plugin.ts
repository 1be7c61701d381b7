/**
 * The data plugin: the Data panel in the left area, and a command to open it.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { dataIcon } from './icon';
import { DataPanel } from './panel';

export const dataPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:data',
  description:
    'The Data panel: your data connections, their grants and a snippet for each.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ): void => {
    const panel = new DataPanel();
    app.shell.add(panel, 'left', { rank: 280 });
    restorer?.add(panel, panel.id);
    app.commands.addCommand('mlfactory:data-open', {
      label: 'Show data connections',
      caption: 'Open the Data panel',
      icon: dataIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: 'mlfactory:data-open', category: 'mlfactory' });
  }
};
