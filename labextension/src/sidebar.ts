/**
 * The mlfactory left-area panel: who is working, on which resources.
 * Server data is fetched when the panel is first shown, never at start-up.
 */
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { requestAPI } from './handler';
import { mlfactoryIcon } from './icon';

/** The resource profile the user's server was started with. */
export interface IProfileInfo {
  slug: string;
  display_name: string;
  cpu: number;
  memory: string;
  gpu: number;
}

/** What the kernel enforces on the server process, as the server reads it. */
export interface ILimitsInfo {
  cpus: number[];
  /** CPU quota in cores; null when not enforced. */
  cpu_quota: number | null;
  /** Memory limit in bytes; null when not enforced. */
  memory_limit: number | null;
  cuda_visible_devices: string | null;
}

/** The body of `GET <base>/mlfactory/api/info`. */
export interface IInfo {
  version: string;
  user: string;
  /** Whose server this is, for display; null when unknown. */
  owner: string | null;
  /** Whether the caller owns this server, as decided by the server. */
  is_owner: boolean;
  profile: IProfileInfo | null;
  limits?: ILimitsInfo;
}

export namespace MLFactorySidebar {
  export interface IOptions {
    /** Where the panel gets its data; defaults to the server extension. */
    fetchInfo?: () => Promise<IInfo>;
  }
}

export class MLFactorySidebar extends Widget {
  constructor(options: MLFactorySidebar.IOptions = {}) {
    super();
    this._fetchInfo = options.fetchInfo ?? (() => requestAPI<IInfo>('info'));
    this.id = 'mlfactory-sidebar';
    this.addClass('mlfactory-Sidebar');
    this.node.dataset.testid = 'mlfactory-sidebar';
    this.title.icon = mlfactoryIcon;
    this.title.caption = 'mlfactory';

    const header = document.createElement('header');
    header.className = 'mlfactory-Sidebar-header';
    const heading = document.createElement('h2');
    heading.textContent = 'mlfactory';
    header.appendChild(heading);

    this._body = document.createElement('div');
    this._body.className = 'mlfactory-Sidebar-body';
    this.node.append(header, this._body);
  }

  /** Fetch the workspace info again and re-render. */
  refresh(): Promise<void> {
    if (!this._pending) {
      this._pending = this._load().finally(() => {
        this._pending = null;
      });
    }
    return this._pending;
  }

  protected override onBeforeShow(msg: Message): void {
    super.onBeforeShow(msg);
    if (!this._loaded) {
      void this.refresh();
    }
  }

  private async _load(): Promise<void> {
    this._body.replaceChildren(paragraph('Loading…', 'mlfactory-loading'));
    try {
      const info = await this._fetchInfo();
      this._loaded = true;
      this._body.replaceChildren(renderWorkspace(info));
    } catch (error) {
      this._body.replaceChildren(this._renderError(error));
    }
  }

  private _renderError(error: unknown): HTMLElement {
    const box = document.createElement('div');
    box.className = 'mlfactory-error';
    box.setAttribute('role', 'alert');
    box.textContent =
      error instanceof Error && error.message
        ? error.message
        : 'Could not reach the mlfactory server extension.';

    const retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'jp-Button jp-mod-styled jp-mod-reject';
    retry.textContent = 'Retry';
    retry.addEventListener('click', () => void this.refresh());

    const wrapper = document.createElement('div');
    wrapper.append(box, retry);
    return wrapper;
  }

  private readonly _body: HTMLElement;
  private readonly _fetchInfo: () => Promise<IInfo>;
  private _loaded = false;
  private _pending: Promise<void> | null = null;
}

/** "1 CPU · 2Gi memory · no GPU" */
export function formatResources(profile: IProfileInfo): string {
  const cpu = `${profile.cpu} CPU`;
  const gpu =
    profile.gpu > 0
      ? `${profile.gpu} GPU${profile.gpu > 1 ? 's' : ''}`
      : 'no GPU';
  return [cpu, `${profile.memory} memory`, gpu].join(' · ');
}

/** "2 cores pinned · CPU quota 1.5 · memory limit 4 GiB" (or "… not enforced") */
export function formatLimits(limits: ILimitsInfo): string {
  const parts = [
    `${limits.cpus.length} core${limits.cpus.length === 1 ? '' : 's'} pinned`,
    limits.cpu_quota === null
      ? 'CPU quota not enforced'
      : `CPU quota ${Number(limits.cpu_quota.toFixed(2))}`,
    limits.memory_limit === null
      ? 'memory limit not enforced'
      : `memory limit ${Number((limits.memory_limit / 2 ** 30).toFixed(2))} GiB`
  ];
  return parts.join(' · ');
}

function renderWorkspace(info: IInfo): HTMLElement {
  const section = document.createElement('section');
  section.className = 'mlfactory-Sidebar-section';
  const title = document.createElement('h3');
  title.textContent = 'Workspace';

  const list = document.createElement('dl');
  list.className = 'mlfactory-Sidebar-facts';
  addFact(list, 'User', info.user, 'mlfactory-user');
  if (!info.is_owner && typeof info.owner === 'string' && info.owner) {
    // Someone else's server (shared through the hub): say whose workspace
    // this is. Ownership is the server's call; user and owner names need not
    // match even for the owner (e.g. a standalone server's token user).
    addFact(list, 'Owner', info.owner, 'mlfactory-owner');
  }
  if (info.profile) {
    addFact(
      list,
      'Profile',
      info.profile.display_name || info.profile.slug,
      'mlfactory-profile'
    );
    addFact(
      list,
      'Resources',
      formatResources(info.profile),
      'mlfactory-resources'
    );
  } else {
    addFact(list, 'Profile', 'None', 'mlfactory-profile');
  }
  if (info.limits) {
    addFact(list, 'Enforced', formatLimits(info.limits), 'mlfactory-limits');
  }
  addFact(list, 'Version', info.version, 'mlfactory-version');

  section.append(title, list);
  return section;
}

/** A `<dt>label</dt><dd>value</dd>` pair, the value as text. */
export function addFact(
  list: HTMLElement,
  label: string,
  value: string,
  testid: string
): void {
  const term = document.createElement('dt');
  term.textContent = label;
  const detail = document.createElement('dd');
  detail.textContent = value;
  detail.dataset.testid = testid;
  list.append(term, detail);
}

function paragraph(text: string, className: string): HTMLElement {
  const p = document.createElement('p');
  p.className = className;
  p.textContent = text;
  return p;
}
