/**
 * The components panel's icon: building blocks, themed like JupyterLab's own.
 */
import { LabIcon } from '@jupyterlab/ui-components';

const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 13h8v8H3zm10 0h8v8h-8zM8 3h8v8H8z"/>
  </g>
</svg>`;

export const componentsIcon = new LabIcon({
  name: 'mlfactory:components',
  svgstr
});
