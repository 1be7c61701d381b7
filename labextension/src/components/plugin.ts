/**
 * The components plugin: the panel in the left area, one main-area tab per
 * component page, and their commands. Nothing here waits on the server; the
 * panel loads when it is first shown, a page when it is opened.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  WidgetTracker
} from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { componentsAPI } from './api';
import { componentsIcon } from './icon';
import { insertBelowActive } from './notebook';
import { ComponentPageView } from './pageView';
import { ComponentsPanel } from './panel';

export namespace CommandIDs {
  export const open = 'mlfactory:components-open';
  export const insert = 'mlfactory:components-insert';
  export const publish = 'mlfactory:components-publish';
}

/** After the mlfactory panel (rank 200) in the left area. */
const RANK = 210;

/** A DOM id for a component's tab (names are checked by the schema, but an
 * id must hold whatever a source sends). */
function pageId(name: string): string {
  return `mlfactory-component-${name.replace(/[^A-Za-z0-9_-]/g, c => `-${c.charCodeAt(0).toString(16)}-`)}`;
}

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

    const pages = new WidgetTracker<MainAreaWidget<ComponentPageView>>({
      namespace: 'mlfactory-component'
    });

    const panel = new ComponentsPanel({
      api: componentsAPI,
      open: (name, version) => openPage(name, version)
    });
    shell.add(panel, 'left', { rank: RANK });
    restorer?.add(panel, panel.id);

    /** Open (or bring back) the tab of `name`, showing `version` if given. */
    const openPage = async (name: string, version?: string): Promise<void> => {
      let tab = pages.find(w => w.content.name === name);
      if (!tab) {
        const content = new ComponentPageView({
          name,
          api: componentsAPI,
          rendermime,
          insertBlocker,
          insert: insertRef,
          browseCategory: category => {
            shell.activateById(panel.id);
            panel.browseCategory(category);
          },
          shown: view => {
            const owner = pages.find(w => w.content === view);
            if (owner) {
              void pages.save(owner);
            }
          }
        });
        tab = new MainAreaWidget({ content });
        tab.id = pageId(name);
        tab.title.closable = true;
        tab.toolbar.hide(); // the page has its own controls
        void pages.add(tab);
        shell.add(tab, 'main');
      }
      shell.activateById(tab.id);
      const shown = tab.content.detail;
      if (!shown || (version && version !== shown.version)) {
        await tab.content.showVersion(version);
      }
    };

    restorer?.restore(pages, {
      command: CommandIDs.open,
      args: tab => {
        const version = tab.content.detail?.version;
        return version
          ? { name: tab.content.name, version }
          : { name: tab.content.name };
      },
      name: tab => tab.content.name
    });

    const changed = () => {
      pages.forEach(tab => tab.content.updateInsertState());
      commands.notifyCommandChanged(CommandIDs.insert);
    };
    tracker?.currentChanged.connect(changed);
    tracker?.widgetAdded.connect(changed);

    commands.addCommand(CommandIDs.open, {
      label: args =>
        stringArg(args, 'name')
          ? `Open component ${stringArg(args, 'name')}`
          : 'Open Components panel',
      caption: 'Search the component registry, or open a component page',
      icon: componentsIcon,
      execute: args => {
        const name = stringArg(args, 'name');
        if (name) {
          return openPage(name, stringArg(args, 'version'));
        }
        shell.activateById(panel.id);
        panel.searchInput.focus();
        return undefined;
      }
    });

    const currentRef = (): string | null =>
      pages.currentWidget?.content.ref ?? null;

    commands.addCommand(CommandIDs.insert, {
      label: args =>
        stringArg(args, 'ref')
          ? `Insert ${stringArg(args, 'ref')}`
          : 'Insert component into notebook',
      caption: args =>
        insertBlocker() ??
        `Insert ${stringArg(args, 'ref') ?? 'the component whose page was last shown'} below the active cell`,
      icon: componentsIcon,
      isEnabled: args =>
        insertBlocker() === null &&
        (stringArg(args, 'ref') ?? currentRef()) !== null,
      execute: args => {
        const ref = stringArg(args, 'ref') ?? currentRef();
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
