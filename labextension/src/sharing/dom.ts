/**
 * The one DOM builder of the sharing views: text goes in through
 * `textContent`, never as markup.
 */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** The refusal shown at the top of a Share dialog reopened after one. */
export function errorBox(text: string, testid: string): HTMLDivElement {
  const box = el('div', 'mlfactory-error mlfactory-ShareForm-error', text);
  box.setAttribute('role', 'alert');
  box.dataset.testid = testid;
  return box;
}
