/**
 * Small DOM builders: every string from the server goes in through
 * `textContent` or an attribute, never as markup.
 */
import { isAbort } from '../handler';
import { sourceLabel, sourceShortLabel } from './labels';

export { isAbort };

export interface IElementOptions {
  className?: string;
  text?: string;
  title?: string;
  testid?: string;
  attrs?: Record<string, string>;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  options: IElementOptions = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (options.className) {
    node.className = options.className;
  }
  if (options.text !== undefined) {
    node.textContent = options.text;
  }
  if (options.title) {
    node.title = options.title;
  }
  if (options.testid) {
    node.dataset.testid = options.testid;
  }
  for (const [key, value] of Object.entries(options.attrs ?? {})) {
    node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child);
    }
  }
  return node;
}

export function button(
  label: string,
  onClick: () => void,
  options: IElementOptions & {
    kind?: 'accept' | 'reject' | 'plain' | 'link';
  } = {}
): HTMLButtonElement {
  const kind = options.kind ?? 'plain';
  // A link-like button takes no Lab button styles: they size it like a button.
  const classes =
    kind === 'link' ? ['mlfactory-LinkButton'] : ['jp-Button', 'jp-mod-styled'];
  if (kind === 'accept' || kind === 'reject') {
    classes.push(`jp-mod-${kind}`);
  }
  if (options.className) {
    classes.push(options.className);
  }
  const node = h('button', {
    ...options,
    className: classes.join(' '),
    text: label,
    attrs: { type: 'button', ...options.attrs }
  });
  node.addEventListener('click', onClick);
  return node;
}

/** A coloured pill: `mlfactory-Badge mlfactory-Badge-<variant>`. */
export function badge(text: string, variant: string, title = ''): HTMLElement {
  return h('span', {
    className: `mlfactory-Badge mlfactory-Badge-${variant.replace(/[^a-z0-9-]/gi, '')}`,
    text,
    title
  });
}

export function stabilityBadge(stability: string): HTMLElement {
  return badge(stability, stability, `Stability: ${stability}`);
}

/** The source of a result: its short name, and in full as the tooltip. */
export function sourceBadge(source: string, kind: string): HTMLElement {
  return badge(
    sourceShortLabel(source, kind),
    'source',
    `Source: ${sourceLabel(source, kind)}`
  );
}

/** An alert with the error's message (the server's, when it sent one). */
export function errorBox(error: unknown, fallback: string): HTMLElement {
  return h('div', {
    className: 'mlfactory-error',
    text: messageOf(error) || fallback,
    attrs: { role: 'alert' }
  });
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : '';
}

/** A `<table>` with a header row; cells are text or nodes. */
export function table(
  headers: string[],
  rows: (string | Node)[][],
  className = ''
): HTMLTableElement {
  const head = h(
    'thead',
    {},
    h(
      'tr',
      {},
      ...headers.map(text => h('th', { text, attrs: { scope: 'col' } }))
    )
  );
  const body = h(
    'tbody',
    {},
    ...rows.map(row => h('tr', {}, ...row.map(cell => h('td', {}, cell))))
  );
  return h(
    'table',
    { className: `mlfactory-Components-table ${className}`.trim() },
    head,
    body
  );
}

/** Hide or show `node`, also against theme rules that set `display`. */
export function setHidden(node: HTMLElement, hidden: boolean): void {
  node.hidden = hidden;
  node.style.display = hidden ? 'none' : '';
}
