/**
 * The Components panel (component registry): see `components/`.
 */
export { componentsPlugin, CommandIDs } from './components/plugin';
export { ComponentsPanel } from './components/panel';
