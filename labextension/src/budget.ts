/**
 * The budget status-bar item and budget notifications.
 *
 * Polls `<base>/mlfactory/api/budget` (the server extension's proxy to the platform
 * service's `api/me`) every minute and when the window regains focus. The status bar shows
 * the tightest budget (or, with none, this server's cost so far); a click opens a popover
 * with this server's cost, every budget and a link to the cost dashboard. Notices the user
 * has not seen yet pop up as notifications; a spent `stop` budget also saves the open
 * documents at once, before the platform stops the server.
 * Everything the service says reaches the DOM as text only.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar, Popup, showPopup } from '@jupyterlab/statusbar';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import type { ISaveResult } from './culling';
import { saveDirtyDocuments } from './culling';
import { Poller, visitedOwner } from './handler';
import { IHubFacts, dashboardLink, hubFacts } from './hub';
import { SessionLog, sessionLog } from './sessionlog';

/** One budget the user's spending counts against (the service's Standing.as_json). */
export interface IBudget {
  kind: string;
  name: string;
  amount: number;
  period: string;
  enforcement: string;
  spent: number;
  /** spent / amount; 1 means fully spent. */
  fraction: number;
  thresholds?: number[];
  period_start?: string;
  resets_at?: string;
}

/** A threshold that fired this period. */
export interface INotice {
  id: number | string;
  kind: string;
  name: string;
  /** As a fraction of the budget: 0.8 is 80%. */
  threshold: number;
  message: string;
  fired_at?: string;
}

/** One of the user's running servers and what it has cost so far (the service's ledger). */
export interface IServerCost {
  server_name: string;
  price_per_hour: number;
  /** ISO 8601, when the ledger started charging it. */
  started: string;
  cost_so_far: number;
  profile?: string;
  project?: string;
}

/** The body of `GET <base>/mlfactory/api/budget` when the service answered. */
export interface IBudgetReply {
  user: string;
  currency: string;
  budgets: IBudget[];
  notices: INotice[];
  servers?: IServerCost[];
}

/** What one poll found. */
export type PollResult =
  | { state: 'ok'; reply: IBudgetReply }
  /** Budgets will not show on this server (not set up, not the owner, old server). */
  | { state: 'off'; message: string }
  /** The service is down or misbehaving; worth trying again later. */
  | { state: 'unavailable'; message: string };

export const POLL_MS = 60_000;
/** Focus events closer together than this do not poll again. */
export const FOCUS_MIN_MS = 10_000;
export const WARN_FRACTION = 0.8;
export const OVER_FRACTION = 1;
const SEEN_LIMIT = 200;

/** The budget closest to being spent (highest fraction), or null when there is none. */
export function tightest(budgets: readonly IBudget[]): IBudget | null {
  let best: IBudget | null = null;
  for (const b of budgets) {
    if (best === null || b.fraction > best.fraction) {
      best = b;
    }
  }
  return best;
}

export function periodPhrase(period: string): string {
  switch (period) {
    case 'monthly':
      return 'this month';
    case 'weekly':
      return 'this week';
    case 'daily':
      return 'today';
    default:
      return `this ${period}`;
  }
}

/** "12.30 / 100.00 USD this month". */
export function formatBudget(b: IBudget, currency: string): string {
  return `${b.spent.toFixed(2)} / ${b.amount.toFixed(2)} ${currency} ${periodPhrase(b.period)}`;
}

export function scopeLabel(b: Pick<IBudget, 'kind' | 'name'>): string {
  switch (b.kind) {
    case 'user':
      return 'Your budget';
    case 'group':
      return `Team ${b.name}`;
    case 'project':
      return `Project ${b.name}`;
    default:
      return `${b.kind} ${b.name}`;
  }
}

export type Level = 'ok' | 'warning' | 'over';

export function levelOf(fraction: number): Level {
  if (fraction >= OVER_FRACTION) {
    return 'over';
  }
  return fraction >= WARN_FRACTION ? 'warning' : 'ok';
}

/** One line per budget, tightest first, for the tooltip. */
export function tooltipLines(reply: IBudgetReply): string[] {
  const sorted = [...reply.budgets].sort((a, b) => b.fraction - a.fraction);
  return sorted.map(b => {
    const pct = Math.round(b.fraction * 100);
    const resets = b.resets_at ? `, resets ${formatDate(b.resets_at)}` : '';
    const mode = b.enforcement === 'alert' ? '' : ` (${b.enforcement} at 100%)`;
    return `${scopeLabel(b)}: ${formatBudget(b, reply.currency)}, ${pct}%${resets}${mode}`;
  });
}

/** "0.05 USD", with four decimals for amounts under a cent. */
export function formatMoney(amount: number, currency: string): string {
  const digits = amount > 0 && amount < 0.01 ? 4 : 2;
  return `${amount.toFixed(digits)} ${currency}`;
}

/** "45 s", "12 min", "3 h 05 min", "2 d 4 h". */
export function formatUptime(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) {
    return `${s} s`;
  }
  const min = Math.floor(s / 60);
  if (min < 60) {
    return `${min} min`;
  }
  const h = Math.floor(min / 60);
  if (h < 24) {
    return `${h} h ${String(min % 60).padStart(2, '0')} min`;
  }
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** "0.0123 USD so far at 0.05 USD/hour". */
export function serverCostLine(cost: IServerCost, currency: string): string {
  return `${formatMoney(cost.cost_so_far, currency)} so far at ${formatMoney(cost.price_per_hour, currency)}/hour`;
}

/** Why a spent `stop` budget stops servers, in the platform's words. */
export function stopReason(b: Pick<IBudget, 'kind' | 'name'>): string {
  return b.kind === 'user'
    ? 'your budget is spent'
    : `the ${b.kind} budget '${b.name}' is spent`;
}

/** The first `stop` budget that is spent: the platform stops its servers after a grace. */
export function spentStopBudget(budgets: readonly IBudget[]): IBudget | null {
  return (
    budgets.find(
      b => b.enforcement === 'stop' && b.fraction >= OVER_FRACTION
    ) ?? null
  );
}

function formatDate(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/**
 * The notices to pop up: not seen before, and for each budget only the highest threshold
 * (a first visit after 50%, 80% and 100% fired shows one notification, not three).
 */
export function noticesToShow(
  notices: readonly INotice[],
  seen: ReadonlySet<string>
): INotice[] {
  const best = new Map<string, INotice>();
  for (const n of notices) {
    if (seen.has(String(n.id))) {
      continue;
    }
    const key = `${n.kind}\u0000${n.name}`;
    const current = best.get(key);
    if (current === undefined || n.threshold > current.threshold) {
      best.set(key, n);
    }
  }
  return [...best.values()];
}

/** Notice ids already shown, remembered per hub user in localStorage. */
export class SeenNotices {
  constructor(user: string, storage: Storage | null = safeLocalStorage()) {
    this._key = `mlfactory:budget-notices-seen:${user}`;
    this._storage = storage;
    this._ids = this._load();
  }

  get ids(): ReadonlySet<string> {
    return new Set(this._ids);
  }

  add(ids: Iterable<number | string>): void {
    for (const id of ids) {
      const s = String(id);
      if (!this._ids.includes(s)) {
        this._ids.push(s);
      }
    }
    // ids only grow (one per threshold per period); keep the newest
    this._ids = this._ids.slice(-SEEN_LIMIT);
    try {
      this._storage?.setItem(this._key, JSON.stringify(this._ids));
    } catch {
      // storage full or disabled: notices may pop again, nothing worse
    }
  }

  private _load(): string[] {
    try {
      const parsed: unknown = JSON.parse(
        this._storage?.getItem(this._key) ?? '[]'
      );
      return Array.isArray(parsed) ? parsed.map(String) : [];
    } catch {
      return [];
    }
  }

  private _key: string;
  private _storage: Storage | null;
  private _ids: string[];
}

function safeLocalStorage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null; // blocked by the browser's privacy settings
  }
}

/** Ask the server extension; never throws. */
export async function fetchBudget(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<PollResult> {
  const url = URLExt.join(settings.baseUrl, 'mlfactory', 'api', 'budget');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, {}, settings);
  } catch {
    return {
      state: 'unavailable',
      message: 'This JupyterLab cannot reach its server.'
    };
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const obj = (typeof body === 'object' && body !== null ? body : {}) as {
    message?: unknown;
    reason?: unknown;
  };
  const message =
    typeof obj.message === 'string'
      ? obj.message
      : `The budget request answered ${response.status}.`;
  if (response.ok) {
    return isReply(body)
      ? { state: 'ok', reply: body }
      : {
          state: 'unavailable',
          message: 'The budget answer was not understood.'
        };
  }
  // not set up here, not this user's server, or a server without the route: stop asking
  if (
    obj.reason === 'not-configured' ||
    response.status === 403 ||
    response.status === 404
  ) {
    return { state: 'off', message };
  }
  return { state: 'unavailable', message };
}

function isReply(body: unknown): body is IBudgetReply {
  if (typeof body !== 'object' || body === null) {
    return false;
  }
  const b = body as Partial<IBudgetReply>;
  return (
    Array.isArray(b.budgets) &&
    b.budgets.every(
      x =>
        typeof x === 'object' &&
        x !== null &&
        typeof x.spent === 'number' &&
        typeof x.amount === 'number' &&
        typeof x.fraction === 'number'
    ) &&
    (b.notices === undefined || Array.isArray(b.notices))
  );
}

/** The cost popover: this server's cost, every budget, and the dashboard link. */
export class CostPopover extends Widget {
  constructor(reply: IBudgetReply | null, facts: IHubFacts | null) {
    super();
    this.addClass('mlfactory-CostPopover');
    this.node.dataset.testid = 'mlfactory-cost-popover';
    const title = document.createElement('h3');
    title.textContent = 'Cost';
    this.node.appendChild(title);
    const cost = reply
      ? reply.servers?.find(x => x.server_name === (facts?.serverName ?? ''))
      : undefined;
    if (reply === null) {
      this.node.appendChild(line('Cost is not known yet.'));
    } else {
      this.node.appendChild(
        line(
          cost
            ? `This server: ${serverCostLine(cost, reply.currency)}`
            : 'This server is not being charged.',
          'mlfactory-cost-server'
        )
      );
      const budgets = tooltipLines(reply);
      const list = document.createElement('ul');
      list.className = 'mlfactory-CostPopover-budgets';
      for (const text of budgets.length
        ? budgets
        : ['No budget applies to you.']) {
        const item = document.createElement('li');
        item.textContent = text;
        list.appendChild(item);
      }
      this.node.appendChild(list);
    }
    if (facts !== null) {
      this.node.appendChild(
        dashboardLink(facts, 'mlfactory-cost-dashboard-link')
      );
    }
  }
}

function line(text: string, testid?: string): HTMLElement {
  const p = document.createElement('p');
  p.textContent = text;
  if (testid) {
    p.dataset.testid = testid;
  }
  return p;
}

/**
 * The status-bar widget: text and tooltip, coloured by the tightest budget; a click (or
 * Enter) opens the cost popover.
 */
export class BudgetStatus extends Widget {
  constructor(facts: IHubFacts | null = hubFacts()) {
    super({ node: document.createElement('div') });
    this._facts = facts;
    this.addClass('mlfactory-BudgetStatus');
    this.node.dataset.testid = 'mlfactory-budget-status';
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this._label = document.createElement('span');
    this._label.className = 'mlfactory-BudgetStatus-label';
    this.node.appendChild(this._label);
    this.node.addEventListener('click', () => this.togglePopover());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.togglePopover();
      }
    });
  }

  /** Emitted when the item should be shown or hidden. */
  get activeStateChanged(): Signal<this, void> {
    return this._activeStateChanged;
  }

  get active(): boolean {
    return this._active;
  }

  togglePopover(): void {
    if (this._popup !== null && !this._popup.isDisposed) {
      this._popup.dispose();
      this._popup = null;
      return;
    }
    this._popup = showPopup({
      body: new CostPopover(this._reply, this._facts),
      anchor: this,
      align: 'left'
    });
  }

  render(result: PollResult): void {
    this.removeClass('mlfactory-mod-warning');
    this.removeClass('mlfactory-mod-over');
    this.removeClass('mlfactory-mod-unavailable');
    let active = true;
    if (result.state === 'ok') {
      this._reply = result.reply;
      const b = tightest(result.reply.budgets);
      const cost = result.reply.servers?.find(
        x => x.server_name === (this._facts?.serverName ?? '')
      );
      if (b !== null) {
        this._label.textContent = formatBudget(b, result.reply.currency);
        this.node.title = [
          ...tooltipLines(result.reply),
          'Click for details'
        ].join('\n');
        const level = levelOf(b.fraction);
        if (level !== 'ok') {
          this.addClass(`mlfactory-mod-${level}`);
        }
        this.node.dataset.level = level;
      } else if (cost) {
        // no budget applies: the item still shows what this server costs
        this._label.textContent = `${formatMoney(cost.cost_so_far, result.reply.currency)} so far`;
        this.node.title = `This server: ${serverCostLine(cost, result.reply.currency)}\nClick for details`;
        this.node.dataset.level = 'ok';
      } else {
        active = false;
      }
    } else if (result.state === 'unavailable') {
      this._label.textContent = 'Budget unavailable';
      this.node.title = result.message;
      this.node.dataset.level = 'unavailable';
      this.addClass('mlfactory-mod-unavailable');
    } else {
      active = false;
    }
    if (active !== this._active) {
      this._active = active;
      this._activeStateChanged.emit();
    }
  }

  override dispose(): void {
    this._popup?.dispose();
    super.dispose();
  }

  private _facts: IHubFacts | null;
  private _label: HTMLSpanElement;
  private _reply: IBudgetReply | null = null;
  private _popup: Popup | null = null;
  private _active = false;
  private _activeStateChanged = new Signal<this, void>(this);
}

/** Polls, renders and notifies; `dispose()` stops it. */
export class BudgetMonitor {
  constructor(
    options: {
      status?: BudgetStatus | null;
      fetch?: () => Promise<PollResult>;
      notify?: (n: INotice) => void;
      seen?: (user: string) => SeenNotices;
      /** Saves the open documents when a `stop` budget is spent. */
      save?: () => Promise<ISaveResult>;
      log?: SessionLog;
    } = {}
  ) {
    this._save = options.save ?? null;
    this._log = options.log ?? sessionLog;
    this._status = options.status ?? null;
    this._fetch = options.fetch ?? (() => fetchBudget());
    this._notify = options.notify ?? notify;
    this._seenFor = options.seen ?? (user => new SeenNotices(user));
    this._poller = new Poller(() => this._check(), {
      name: 'budget',
      interval: POLL_MS,
      focusMinMs: FOCUS_MIN_MS
    });
  }

  start(): void {
    this._poller.start();
  }

  dispose(): void {
    this._poller.dispose();
  }

  /** Ask now (unless a poll is running). */
  poll(): Promise<void> {
    return this._poller.run();
  }

  private async _check(): Promise<void> {
    const result = await this._fetch();
    this._status?.render(result);
    if (result.state === 'off') {
      this.dispose(); // it will not change while this server runs
    } else if (result.state === 'ok') {
      this._log.setBudget(result.reply);
      this._notifyNew(result.reply);
      await this._saveBeforeBudgetStop(result.reply);
    }
  }

  /** Once per spent `stop` budget: the server goes after the grace, save what is open. */
  private async _saveBeforeBudgetStop(reply: IBudgetReply): Promise<void> {
    const spent = spentStopBudget(reply.budgets);
    if (spent === null) {
      this._log.budgetStop = null;
      return;
    }
    if (this._log.budgetStop !== null) {
      return;
    }
    this._log.budgetStop = { reason: stopReason(spent) };
    if (this._save !== null) {
      this._log.recordSave('when the budget was spent', await this._save());
    }
  }

  private _notifyNew(reply: IBudgetReply): void {
    const notices = reply.notices ?? [];
    if (notices.length === 0) {
      return;
    }
    if (this._seen === null) {
      this._seen = this._seenFor(reply.user);
    }
    const show = noticesToShow(notices, this._seen.ids);
    // mark all as seen, including the lower thresholds folded into `show`
    this._seen.add(notices.map(n => n.id));
    for (const n of show) {
      this._notify(n);
    }
  }

  private _status: BudgetStatus | null;
  private _save: (() => Promise<ISaveResult>) | null;
  private _log: SessionLog;
  private _fetch: () => Promise<PollResult>;
  private _notify: (n: INotice) => void;
  private _seenFor: (user: string) => SeenNotices;
  private _seen: SeenNotices | null = null;
  private _poller: Poller;
}

/** A notice as a JupyterLab notification (rendered as text by JupyterLab). */
export function notify(n: INotice): void {
  const message =
    n.message || `${scopeLabel(n)}: ${Math.round(n.threshold * 100)}% spent`;
  if (n.threshold >= OVER_FRACTION) {
    Notification.error(message, { autoClose: false });
  } else {
    Notification.warning(message, { autoClose: 20_000 });
  }
}

export const budgetPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:budget',
  description:
    'Spend against your budgets in the status bar, and a notification when one crosses a threshold.',
  autoStart: true,
  optional: [IStatusBar],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar | null): void => {
    let status: BudgetStatus | null = null;
    if (statusBar) {
      status = new BudgetStatus();
      const item = status;
      statusBar.registerStatusItem(budgetPlugin.id, {
        item,
        align: 'left',
        rank: 100,
        isActive: () => item.active,
        activeStateChanged: item.activeStateChanged
      });
    }
    const monitor = new BudgetMonitor({
      status,
      save: () => saveDirtyDocuments(app.shell)
    });
    // Not awaited: activation never waits on the server. The budget is the owner's
    // (owner-only route): a visitor's page leaves it alone.
    void visitedOwner().then(owner => {
      if (owner === null) {
        monitor.start();
      }
    });
  }
};
