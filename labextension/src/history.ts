/**
 * Placeholder: filled in by the history panel work.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

export const historyPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:history',
  description: 'The history panel.',
  autoStart: true,
  activate: (app: JupyterFrontEnd): void => {
    void app;
  }
};
