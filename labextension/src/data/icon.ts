/**
 * The data icon: a database cylinder, themed like JupyterLab's own.
 */
import { LabIcon } from '@jupyterlab/ui-components';

const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2C7.6 2 4 3.3 4 5v14c0 1.7 3.6 3 8 3s8-1.3 8-3V5c0-1.7-3.6-3-8-3zm0 2c3.9 0 6 1 6 1s-2.1 1-6 1-6-1-6-1 2.1-1 6-1zM6 7.4C7.6 8 9.7 8.3 12 8.3s4.4-.3 6-.9V11c0 .4-2.3 1.4-6 1.4S6 11.4 6 11V7.4zm0 6c1.6.6 3.7.9 6 .9s4.4-.3 6-.9V19c0 .4-2.3 1.4-6 1.4S6 19.4 6 19v-5.6z"/>
  </g>
</svg>`;

export const dataIcon = new LabIcon({ name: 'mlfactory:data', svgstr });
