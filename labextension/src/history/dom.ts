/**
 * Small DOM builders for the history views. Every piece of text goes in
 * through textContent (or a text node), never as HTML.
 */
export { addFact } from '../sidebar';

export function div(className: string): HTMLDivElement {
  const node = document.createElement('div');
  node.className = className;
  return node;
}

export function paragraph(text: string, className = ''): HTMLParagraphElement {
  const p = document.createElement('p');
  p.className = className;
  p.textContent = text;
  return p;
}

export function button(
  label: string,
  onClick: (() => void) | null,
  kind: 'accept' | 'reject' | 'warn'
): HTMLButtonElement {
  const node = document.createElement('button');
  node.type = 'button';
  node.className = `jp-Button jp-mod-styled jp-mod-${kind}`;
  node.textContent = label;
  if (onClick) {
    node.addEventListener('click', onClick);
  }
  return node;
}

/** A styled input named `name`, labelled for screen readers and tests. */
export function input(
  type: string,
  label: string,
  name: string
): HTMLInputElement {
  const node = document.createElement('input');
  node.type = type;
  node.name = name;
  node.className = 'jp-mod-styled';
  node.setAttribute('aria-label', label);
  node.dataset.testid = `mlfactory-history-${name}`;
  return node;
}

export function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  const label = document.createElement('label');
  label.className = 'mlfactory-HistoryPanel-field';
  const caption = document.createElement('span');
  caption.textContent = text;
  label.append(caption, control);
  return label;
}

export function errorBox(text: string): HTMLElement {
  const box = div('mlfactory-error');
  box.setAttribute('role', 'alert');
  box.textContent = text;
  return box;
}

export function fileList(files: readonly string[]): HTMLUListElement {
  const list = document.createElement('ul');
  list.className = 'mlfactory-HistoryPanel-files';
  for (const file of files) {
    const item = document.createElement('li');
    item.textContent = file;
    list.append(item);
  }
  return list;
}

/** A collapsible panel section (closed at first). */
export function section(
  title: string,
  className: string,
  testid: string
): HTMLDetailsElement {
  const node = document.createElement('details');
  node.className = `mlfactory-Sidebar-section ${className}`;
  node.dataset.testid = testid;
  const summary = document.createElement('summary');
  summary.textContent = title;
  node.append(summary);
  return node;
}

/**
 * A closed "Details" disclosure listing git's facts (ids, e-mails, exact
 * times) that the main view leaves out, for those who want them.
 */
export function detailsView(
  facts: readonly [string, string][],
  testid: string
): HTMLDetailsElement {
  const node = document.createElement('details');
  node.className = 'mlfactory-HistoryDetails';
  node.dataset.testid = testid;
  const summary = document.createElement('summary');
  summary.textContent = 'Details';
  const list = document.createElement('dl');
  list.className = 'mlfactory-HistoryDetails-facts';
  for (const [term, value] of facts) {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    list.append(dt, dd);
  }
  node.append(summary, list);
  return node;
}

/** A status line that is either news or an error. */
export function feedback(node: HTMLElement, text: string, error = false): void {
  node.classList.toggle('mlfactory-error', error);
  node.replaceChildren(text);
}
