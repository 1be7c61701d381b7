/**
 * The mlfactory JupyterLab plugins.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { budgetPlugin } from './budget';
import { collaborativeSavePlugin } from './collaborativeSave';
import { componentsPlugin } from './components';
import { cullingPlugin, saveDirtyDocuments } from './culling';
import { dataPlugin } from './data/plugin';
import { historyPlugin } from './history';
import { mlfactoryIcon } from './icon';
import { MLFactorySidebar } from './sidebar';
import { modelsPlugin } from './models/plugin';
import { sharingPlugin } from './sharing/plugin';
import { stopNoticePlugin } from './stopnotice';

namespace CommandIDs {
  export const openSidebar = 'mlfactory:open-sidebar';
}

const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:sidebar',
  description: 'The mlfactory panel in the left area.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null
  ): void => {
    const sidebar = new MLFactorySidebar({
      save: () => saveDirtyDocuments(app.shell)
    });
    labShell.add(sidebar, 'left', { rank: 200 });
    restorer?.add(sidebar, sidebar.id);

    app.commands.addCommand(CommandIDs.openSidebar, {
      label: 'Open mlfactory panel',
      caption: 'Show the mlfactory panel in the left area',
      icon: mlfactoryIcon,
      execute: () => labShell.activateById(sidebar.id)
    });
    palette?.addItem({
      command: CommandIDs.openSidebar,
      category: 'mlfactory'
    });

    if (settingRegistry) {
      // Not awaited: activation never waits on the server.
      Promise.all([settingRegistry.load(sidebarPlugin.id), app.restored])
        .then(([settings]) => {
          if (settings.get('openOnStart').composite === true) {
            labShell.activateById(sidebar.id);
          }
        })
        .catch(reason => {
          console.error('mlfactory: could not load settings.', reason);
        });
    }
  }
};

const plugins: JupyterFrontEndPlugin<unknown>[] = [
  sidebarPlugin,
  budgetPlugin,
  collaborativeSavePlugin,
  cullingPlugin,
  stopNoticePlugin,
  componentsPlugin,
  historyPlugin,
  sharingPlugin,
  modelsPlugin,
  dataPlugin
];
export default plugins;
