/**
 * Markdown and code through JupyterLab's renderers, untrusted (so sanitized),
 * with plain text when no renderer is available.
 */
import { MimeModel, type IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { h } from './dom';

/**
 * Fill `host` (already in the document) with `markdown` rendered sanitized;
 * returns the renderer widget to dispose of when the page goes away.
 */
export async function renderMarkdown(
  rendermime: IRenderMimeRegistry | null,
  markdown: string,
  host: HTMLElement
): Promise<Widget | null> {
  const fallback = (): null => {
    host.replaceChildren(
      h('pre', { className: 'mlfactory-Components-plain', text: markdown })
    );
    return null;
  };
  if (!rendermime || !host.isConnected) {
    return fallback();
  }
  const mimeType = 'text/markdown';
  const renderer = rendermime.createRenderer(mimeType);
  // trusted: false makes the renderer sanitize any HTML in the text.
  const model = new MimeModel({
    data: { [mimeType]: markdown },
    trusted: false
  });
  try {
    host.replaceChildren();
    Widget.attach(renderer, host);
    await renderer.renderModel(model);
    return renderer;
  } catch (error) {
    console.warn('mlfactory: markdown rendering failed', error);
    renderer.dispose();
    return fallback();
  }
}

/** Python source as a fenced Markdown block, so it gets Lab's highlighting. */
export function pythonFence(code: string): string {
  const longest = Math.max(
    2,
    ...Array.from(code.matchAll(/`+/g), match => match[0].length)
  );
  const fence = '`'.repeat(longest + 1);
  return `${fence}python\n${code.replace(/\n$/, '')}\n${fence}\n`;
}
