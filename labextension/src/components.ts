/**
 * Placeholder: filled in by the components panel work.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

export const componentsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:components',
  description: 'The components panel.',
  autoStart: true,
  activate: (app: JupyterFrontEnd): void => {
    void app;
  }
};
