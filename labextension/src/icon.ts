/**
 * The mlfactory logo, themed through JupyterLab's icon classes.
 */
import { LabIcon } from '@jupyterlab/ui-components';

const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 21V10l5 3V10l5 3V10l5 3V3h3v18z"/>
  </g>
</svg>`;

export const mlfactoryIcon = new LabIcon({ name: 'mlfactory:logo', svgstr });
