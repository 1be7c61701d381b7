/**
 * A component's page as the content of a main-area tab (one tab per
 * component, as JupyterLab opens one per document): loads a version, renders
 * the page that page.ts builds, its README and example, and inserts the
 * snippet. The plugin owns the tabs; every text goes in as text.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import type { IComponentsAPI } from './api';
import { errorBox, h, isAbort, messageOf } from './dom';
import { componentsIcon } from './icon';
import { pythonFence, renderMarkdown } from './markdown';
import { componentPage, refOf } from './page';
import type { IComponentDetail } from './types';

export namespace ComponentPageView {
  export interface IOptions {
    /** The component this tab shows (any of its versions). */
    name: string;
    api: IComponentsAPI;
    /** Renders READMEs and examples; plain text without it. */
    rendermime: IRenderMimeRegistry | null;
    /** Why a snippet cannot be inserted now (shown as a tooltip), or null. */
    insertBlocker: () => string | null;
    /** Insert the snippet of the exact reference `name@x.y.z`. */
    insert: (ref: string) => Promise<void>;
    /** Show a category's components in the Components panel. */
    browseCategory: (category: string) => void;
    /** Called after another version is shown (to save the layout). */
    shown?: (view: ComponentPageView) => void;
  }
}

export class ComponentPageView extends Widget {
  readonly name: string;

  constructor(options: ComponentPageView.IOptions) {
    super();
    this.name = options.name;
    this._options = options;
    this.addClass('mlfactory-ComponentPage');
    this.node.dataset.testid = 'components-page';
    this.node.dataset.component = options.name;
    this.node.tabIndex = -1;
    this.title.label = options.name;
    this.title.caption = `Component ${options.name}`;
    this.title.icon = componentsIcon;
  }

  /** The version on show, once loaded. */
  get detail(): IComponentDetail | null {
    return this._detail;
  }

  /** The exact reference on show (`name@x.y.z`), once loaded. */
  get ref(): string | null {
    return this._detail ? refOf(this._detail) : null;
  }

  /** Show `version` (default: the component's default version). */
  async showVersion(version?: string): Promise<void> {
    const name = this.name;
    // Switching versions keeps focus on the control that switched.
    const focused = document.activeElement;
    const refocus =
      focused instanceof HTMLElement && this.node.contains(focused)
        ? focused.dataset.testid
        : undefined;
    this._controller?.abort();
    const controller = new AbortController();
    this._controller = controller;
    this._disposeRenderers();
    this._detail = null;
    this._insertButton = null;
    this.node.replaceChildren(
      h('p', { className: 'mlfactory-loading', text: `Loading ${name}…` })
    );
    try {
      const detail = await this._options.api.item(
        name,
        version,
        controller.signal
      );
      if (controller.signal.aborted || this.isDisposed) {
        return;
      }
      this._detail = detail;
      this.title.caption = `Component ${refOf(detail)}`;
      this._render(detail);
      const again = refocus
        ? this.node.querySelector<HTMLElement>(`[data-testid="${refocus}"]`)
        : null;
      if (again) {
        again.focus();
      } else if (this.node.contains(document.activeElement)) {
        this._focusTitle();
      }
      this._options.shown?.(this);
    } catch (error) {
      if (isAbort(error) || controller.signal.aborted || this.isDisposed) {
        return;
      }
      this.node.replaceChildren(
        errorBox(error, `Could not load the component ${name}.`)
      );
    } finally {
      if (this._controller === controller) {
        this._controller = null;
      }
    }
  }

  /** Re-check whether Insert is possible (the active notebook changed). */
  updateInsertState(): void {
    if (!this._insertButton || !this._detail) {
      return;
    }
    const blocker = this._options.insertBlocker();
    this._insertButton.disabled = blocker !== null;
    this._insertButton.title =
      blocker ?? `Insert ${refOf(this._detail)} below the active cell`;
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._controller?.abort();
    this._disposeRenderers();
    super.dispose();
  }

  protected override onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (!this.node.contains(document.activeElement)) {
      this._focusTitle();
    }
  }

  private _focusTitle(): void {
    (this.node.querySelector<HTMLElement>('h3') ?? this.node).focus();
  }

  private _render(d: IComponentDetail): void {
    const page = componentPage(d, {
      openVersion: version => void this.showVersion(version),
      browseCategory: category => this._options.browseCategory(category),
      insert: (ref, message) => void this._onInsert(ref, message)
    });
    this._insertButton = page.insertButton;
    this.updateInsertState();
    const { example, readme } = page;
    this.node.replaceChildren(...page.nodes);

    // Renderers need their host in the document (a tab not yet attached
    // renders its Markdown as plain text rather than not at all).
    const pending: Promise<Widget | null>[] = [];
    if (d.example) {
      pending.push(
        renderMarkdown(
          this._options.rendermime,
          pythonFence(d.example),
          example
        )
      );
    }
    if (d.readme) {
      pending.push(renderMarkdown(this._options.rendermime, d.readme, readme));
    }
    for (const rendered of pending) {
      void rendered.then(widget => {
        if (widget && (this._detail !== d || this.isDisposed)) {
          widget.dispose();
        } else if (widget) {
          this._renderers.push(widget);
        }
      });
    }
  }

  private async _onInsert(ref: string, message: HTMLElement): Promise<void> {
    const insertButton = this._insertButton;
    if (!insertButton) {
      return;
    }
    insertButton.disabled = true;
    message.replaceChildren();
    try {
      await this._options.insert(ref);
      message.textContent = `Inserted ${ref}.`;
    } catch (error) {
      message.replaceChildren(
        errorBox(error, `Could not insert ${ref}: ${messageOf(error)}`)
      );
    } finally {
      this.updateInsertState();
    }
  }

  private _disposeRenderers(): void {
    for (const widget of this._renderers) {
      widget.dispose();
    }
    this._renderers = [];
  }

  private readonly _options: ComponentPageView.IOptions;
  private _controller: AbortController | null = null;
  private _detail: IComponentDetail | null = null;
  private _insertButton: HTMLButtonElement | null = null;
  private _renderers: Widget[] = [];
}
