/**
 * The mlfactory left-area panel: who is working, on which resources, for how long and at
 * what cost, with "Stop" and "Change resources" (both through the hub, after a
 * confirmation and a save of the open documents).
 * Server data is fetched when the panel is first shown, never at start-up; the cost comes
 * from the budget poll's latest answer (the session log), not from a poll of its own.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { formatUptime, serverCostLine } from './budget';
import type { ISaveResult } from './culling';
import {
  type IInfo,
  type ILimitsInfo,
  type IProfileInfo,
  serverInfo,
  visitingLine
} from './handler';
import {
  IHubFacts,
  dashboardLink,
  hubFacts,
  isStopped,
  spawnUrl,
  stopServer
} from './hub';
import { mlfactoryIcon } from './icon';
import { SessionLog, sessionLog } from './sessionlog';

export type { IInfo, ILimitsInfo, IProfileInfo } from './handler';

/** How often the uptime and cost lines are redrawn while the panel is visible. */
export const TICK_MS = 30_000;
/** "Change resources" waits this long at most for the hub to finish the stop. */
const STOP_WAIT_MS = 60_000;

export namespace MLFactorySidebar {
  export interface IOptions {
    /** Where the panel gets its data; defaults to the server extension. */
    fetchInfo?: () => Promise<IInfo>;
    /** Saves the open documents before a stop. */
    save?: () => Promise<ISaveResult>;
    /** The hub this server runs under; null outside a hub (no stop, no links). */
    facts?: IHubFacts | null;
    log?: SessionLog;
  }
}

export class MLFactorySidebar extends Widget {
  constructor(options: MLFactorySidebar.IOptions = {}) {
    super();
    this._fetchInfo = options.fetchInfo ?? serverInfo;
    this._save = options.save ?? null;
    this._facts = options.facts === undefined ? hubFacts() : options.facts;
    this._log = options.log ?? sessionLog;
    this._log.changed.connect(this._tick, this);
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
    this._tick();
    window.clearInterval(this._timer);
    this._timer = window.setInterval(() => this._tick(), TICK_MS);
  }

  protected override onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    window.clearInterval(this._timer);
  }

  override dispose(): void {
    window.clearInterval(this._timer);
    this._log.changed.disconnect(this._tick, this);
    super.dispose();
  }

  private async _load(): Promise<void> {
    this._body.replaceChildren(paragraph('Loading…', 'mlfactory-loading'));
    try {
      const info = await this._fetchInfo();
      this._loaded = true;
      this._info = info;
      this._body.replaceChildren(
        renderWorkspace(info),
        this._renderSession(info)
      );
      this._tick();
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

  /** The session section: uptime, cost, the dashboard, Stop and Change resources. */
  private _renderSession(info: IInfo): HTMLElement {
    const section = document.createElement('section');
    section.className = 'mlfactory-Sidebar-section';
    const title = document.createElement('h3');
    title.textContent = 'Session';
    const list = document.createElement('dl');
    list.className = 'mlfactory-Sidebar-facts';
    this._uptime = addFact(list, 'Uptime', '', 'mlfactory-uptime');
    this._cost = addFact(list, 'Cost so far', '', 'mlfactory-cost');
    section.append(title, list);
    if (!info.is_owner && info.owner) {
      const visiting = paragraph(
        visitingLine(info.owner),
        'mlfactory-Sidebar-visiting'
      );
      visiting.dataset.testid = 'mlfactory-visiting';
      section.appendChild(visiting);
    }

    const facts = this._facts;
    if (facts !== null) {
      section.appendChild(dashboardLink(facts, 'mlfactory-dashboard-link'));
    }
    if (facts !== null && info.is_owner) {
      const actions = document.createElement('div');
      actions.className = 'mlfactory-Sidebar-actions';
      actions.append(
        button('Stop', 'mlfactory-stop', 'jp-mod-warn', () =>
          this._stop(facts, false)
        ),
        button('Change resources', 'mlfactory-change-resources', '', () =>
          this._stop(facts, true)
        )
      );
      this._status = paragraph('', 'mlfactory-Sidebar-status');
      this._status.dataset.testid = 'mlfactory-session-status';
      this._status.setAttribute('role', 'status');
      section.append(actions, this._status);
    }
    return section;
  }

  /** Redraw uptime and cost from what is known now. */
  private _tick(): void {
    if (this._uptime !== null) {
      const started = this._info?.started
        ? new Date(this._info.started).getTime()
        : NaN;
      this._uptime.textContent = Number.isFinite(started)
        ? formatUptime(Date.now() - started)
        : 'Not known';
    }
    if (this._cost !== null && this._info?.is_owner === false) {
      // a visitor's page does not poll the owner's budget (owner-only)
      this._cost.textContent = 'Only the owner sees what this server costs';
    } else if (this._cost !== null) {
      const reply = this._log.budget;
      const cost = this._log.serverCost(this._facts?.serverName ?? '');
      this._cost.textContent =
        reply === null
          ? 'Not known yet (the platform service has not answered)'
          : cost === null
            ? 'This server is not being charged'
            : serverCostLine(cost, reply.currency);
    }
  }

  /** "Stop" (`change` false) or "Change resources" (`change` true). */
  private async _stop(facts: IHubFacts, change: boolean): Promise<void> {
    const body = change
      ? 'This stops the server, then opens the page where you pick other resources and start it again. Open documents with unsaved changes are saved first; running kernels stop and lose their variables.'
      : 'Open documents with unsaved changes are saved first; running kernels stop and lose their variables. You can start the server again from the hub.';
    const result = await showDialog({
      title: change ? 'Change resources?' : 'Stop this server?',
      body,
      buttons: [
        Dialog.cancelButton(),
        Dialog.warnButton({
          label: change ? 'Stop and choose resources' : 'Stop the server'
        })
      ]
    });
    if (!result.button.accept) {
      return;
    }
    this._log.stopRequested = new Date();
    this._log.leaving = change;
    this._setStatus('Saving open documents…');
    if (this._save !== null) {
      this._log.recordSave(
        change ? 'before you changed resources' : 'before you stopped it',
        await this._save()
      );
    }
    this._setStatus('Stopping…');
    const stopped = await stopServer(facts);
    if (!stopped.ok) {
      this._log.stopRequested = null;
      this._log.leaving = false;
      this._setStatus('');
      Notification.error(stopped.message, { autoClose: false });
      return;
    }
    if (!change) {
      return; // the stop notice takes it from here
    }
    const deadline = Date.now() + STOP_WAIT_MS;
    while (Date.now() < deadline && !(await isStopped(facts))) {
      await new Promise(resolve => setTimeout(resolve, 1000));
    }
    window.location.assign(spawnUrl(facts));
  }

  private _setStatus(text: string): void {
    if (this._status !== null) {
      this._status.textContent = text;
    }
  }

  private readonly _body: HTMLElement;
  private readonly _fetchInfo: () => Promise<IInfo>;
  private readonly _save: (() => Promise<ISaveResult>) | null;
  private readonly _facts: IHubFacts | null;
  private readonly _log: SessionLog;
  private _info: IInfo | null = null;
  private _uptime: HTMLElement | null = null;
  private _cost: HTMLElement | null = null;
  private _status: HTMLElement | null = null;
  private _timer = 0;
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

/** A `<dt>label</dt><dd>value</dd>` pair, the value as text; returns the `<dd>`. */
export function addFact(
  list: HTMLElement,
  label: string,
  value: string,
  testid: string
): HTMLElement {
  const term = document.createElement('dt');
  term.textContent = label;
  const detail = document.createElement('dd');
  detail.textContent = value;
  detail.dataset.testid = testid;
  list.append(term, detail);
  return detail;
}

function button(
  label: string,
  testid: string,
  mod: string,
  onClick: () => Promise<void>
): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `jp-Button jp-mod-styled ${mod}`.trim();
  b.textContent = label;
  b.dataset.testid = testid;
  b.addEventListener('click', () => {
    b.disabled = true;
    void onClick().finally(() => {
      b.disabled = false;
    });
  });
  return b;
}

function paragraph(text: string, className: string): HTMLElement {
  const p = document.createElement('p');
  p.className = className;
  p.textContent = text;
  return p;
}
