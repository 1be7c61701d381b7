/**
 * The sharing plugin: "Share…" in the notebook toolbar, the file browser's
 * context menu and the command palette; the Sharing panel ("Shared with me",
 * "My shares", "This workspace") in the left area; previews in main-area
 * tabs; "Share workspace…" (workspace.ts) in the palette and the panel.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  ToolbarButton
} from '@jupyterlab/apputils';
import type { DocumentRegistry } from '@jupyterlab/docregistry';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, type NotebookPanel } from '@jupyterlab/notebook';
import type { IDisposable } from '@lumino/disposable';

import { visitedOwner } from '../handler';
import { shareNotebook } from './dialog';
import { shareIcon } from './icon';
import type { IShare } from './model';
import { SharingPanel } from './panel';
import { createPreviewTab, type SharePreview } from './preview';
import {
  shareWorkspace,
  WorkspaceSection,
  workspaceSharesChanged
} from './workspace';

export namespace CommandIDs {
  export const share = 'mlfactory:share-notebook';
  export const open = 'mlfactory:sharing-open';
  export const shareWorkspace = 'mlfactory:share-workspace';
}

export const sharingPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:sharing',
  description:
    'Share notebooks (view or copy) with users and groups; the Sharing panel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    browser: IDefaultFileBrowser | null
  ): void => {
    // Only the owner shares from this server (owner-only routes): a visitor gets no
    // Share commands. Until the server has said, they stay enabled.
    let visiting = false;
    void visitedOwner().then(owner => {
      visiting = owner !== null;
      app.commands.notifyCommandChanged();
    });

    /** Save the open notebook at `path` first: the server shares the file. */
    const save = async (path: string): Promise<void> => {
      const open = tracker.find(panel => panel.context.path === path);
      if (open && open.context.model.dirty) {
        await open.context.save();
      }
    };

    const previews = new Map<string, MainAreaWidget<SharePreview>>();
    const preview = (share: IShare) => {
      const key = `${share.id}:${share.version}`;
      let tab = previews.get(key);
      if (!tab || tab.isDisposed) {
        tab = createPreviewTab(share);
        previews.set(key, tab);
        tab.disposed.connect(() => previews.delete(key));
        app.shell.add(tab, 'main');
      }
      app.shell.activateById(tab.id);
    };

    const workspace = new WorkspaceSection(() =>
      app.commands.execute(CommandIDs.shareWorkspace)
    );
    workspaceSharesChanged.connect(() => void workspace.refresh());
    const panel = new SharingPanel({
      preview,
      save,
      openFile: path => void app.commands.execute('docmanager:open', { path }),
      workspace
    });
    app.shell.add(panel, 'left', { rank: 260 });
    restorer?.add(panel, panel.id);

    /** The notebook to share: the command's `path`, the file browser's
     * selection (context menu), or the current notebook. */
    const target = (args: Record<string, unknown>): string | null => {
      if (typeof args.path === 'string' && args.path) {
        return args.path;
      }
      if (args.fromBrowser === true && browser) {
        const item = browser.selectedItems().next();
        const model = item && !item.done ? item.value : null;
        return model && model.type === 'notebook' ? model.path : null;
      }
      return tracker.currentWidget?.context.path ?? null;
    };

    app.commands.addCommand(CommandIDs.share, {
      label: args => (args.fromBrowser ? 'Share…' : 'Share notebook…'),
      caption: 'Share a notebook with users and groups: to view, or to copy',
      icon: shareIcon,
      isEnabled: args => !visiting && target(args) !== null,
      isVisible: () => !visiting,
      execute: async args => {
        const path = target(args);
        if (path) {
          await shareNotebook(path, () => save(path));
        }
      }
    });
    app.commands.addCommand(CommandIDs.open, {
      label: 'Show shared notebooks',
      caption: 'Open the Sharing panel: shared with me, and my shares',
      icon: shareIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.shareWorkspace, {
      label: 'Share workspace…',
      caption:
        'Let users or groups use this whole server: they can run code as you',
      icon: shareIcon,
      isEnabled: () => !visiting,
      isVisible: () => !visiting,
      execute: () => shareWorkspace()
    });
    palette?.addItem({ command: CommandIDs.share, category: 'mlfactory' });
    palette?.addItem({
      command: CommandIDs.shareWorkspace,
      category: 'mlfactory'
    });
    palette?.addItem({ command: CommandIDs.open, category: 'mlfactory' });

    app.contextMenu.addItem({
      command: CommandIDs.share,
      args: { fromBrowser: true },
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 20
    });

    app.docRegistry.addWidgetExtension('Notebook', new ShareButton(app));
  }
};

/** The "Share" button in each notebook's toolbar. */
class ShareButton implements DocumentRegistry.IWidgetExtension<
  NotebookPanel,
  never
> {
  constructor(private _app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      icon: shareIcon,
      label: 'Share',
      tooltip: 'Share this notebook with users and groups',
      onClick: () =>
        void this._app.commands.execute(CommandIDs.share, {
          path: panel.context.path
        })
    });
    button.node.dataset.testid = 'mlfactory-share-button';
    void visitedOwner().then(owner => {
      if (owner !== null) {
        button.hide(); // only the owner shares this server's notebooks
      }
    });
    if (!panel.toolbar.insertAfter('cellType', 'mlfactory-share', button)) {
      panel.toolbar.addItem('mlfactory-share', button);
    }
    return button;
  }
}
