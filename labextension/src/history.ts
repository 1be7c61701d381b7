/**
 * Notebook history without git vocabulary: the plugin lives in `history/`.
 */
export { historyPlugin } from './history/plugin';
