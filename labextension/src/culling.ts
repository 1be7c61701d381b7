/**
 * Idle-shutdown warnings.
 *
 * Polls `<base>/mlfactory/api/culling` (the server extension's proxy to the platform
 * service's `culling/status` for this server) every minute and when the window regains
 * focus. When the service means to stop this server, the user gets one notification per
 * deadline, saying when and why, with a "Keep running" button; and every open document
 * with unsaved changes is saved at once (and again shortly before the deadline), so the
 * stop loses nothing. Everything the service says reaches the DOM as text only.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { PathExt, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { Poller, visitedOwner } from './handler';
import { SessionLog, sessionLog } from './sessionlog';

/** The body of `GET <base>/mlfactory/api/culling` (the service's culling status). */
export interface ICullingStatus {
  server_name: string;
  action: string;
  reason: string;
  deadline: string | null;
  keep_alive_left: number;
  idle_timeout: number;
  last_stop: { stopped_at: string; reason: string } | null;
  /** How often the service wants to be asked (shorter when warnings come sooner). */
  poll_seconds?: number;
}

export type CullingPoll =
  | { state: 'ok'; status: ICullingStatus }
  /** Not set up here, not the owner, or a server without the route: stop asking. */
  | { state: 'off'; message: string }
  /** The service is down or misbehaving; worth trying again later. */
  | { state: 'unavailable'; message: string };

export type KeepAliveResult =
  { ok: true; left: number } | { ok: false; message: string };

/** What saving the open documents did, by file name. */
export interface ISaveResult {
  saved: string[];
  failed: string[];
}

export const POLL_MS = 60_000;
/** Focus events closer together than this do not poll again. */
export const FOCUS_MIN_MS = 10_000;
/** Save again this long before the deadline, for edits made after the warning. */
export const SAVE_AHEAD_MS = 60_000;
/** Deadlines closer than this are the same warning (the service may round differently). */
const SAME_DEADLINE_MS = 60_000;

type Fetcher = (init?: RequestInit) => Promise<Response>;

function endpoint(name: string): Fetcher {
  return (init = {}) => {
    const settings = ServerConnection.makeSettings();
    const url = URLExt.join(settings.baseUrl, 'mlfactory', 'api', name);
    // makeRequest adds the XSRF header that jupyter-server wants on a POST
    return ServerConnection.makeRequest(url, init, settings);
  };
}

async function bodyOf(
  response: Response
): Promise<{ [key: string]: unknown } | null> {
  try {
    const body: unknown = await response.json();
    return typeof body === 'object' && body !== null && !Array.isArray(body)
      ? (body as { [key: string]: unknown })
      : null;
  } catch {
    return null;
  }
}

/** Ask the server extension for this server's culling status; never throws. */
export async function fetchCulling(
  request: Fetcher = endpoint('culling')
): Promise<CullingPoll> {
  let response: Response;
  try {
    response = await request();
  } catch {
    return {
      state: 'unavailable',
      message: 'This JupyterLab cannot reach its server.'
    };
  }
  const body = await bodyOf(response);
  const message =
    typeof body?.message === 'string'
      ? body.message
      : `The idle-shutdown request answered ${response.status}.`;
  if (response.ok) {
    return isStatus(body)
      ? { state: 'ok', status: body }
      : {
          state: 'unavailable',
          message: 'The idle-shutdown answer was not understood.'
        };
  }
  if (
    body?.reason === 'not-configured' ||
    response.status === 403 ||
    response.status === 404
  ) {
    return { state: 'off', message };
  }
  return { state: 'unavailable', message };
}

function isStatus(body: unknown): body is ICullingStatus {
  if (typeof body !== 'object' || body === null) {
    return false;
  }
  const b = body as { [key: string]: unknown };
  return (
    typeof b.action === 'string' &&
    typeof b.reason === 'string' &&
    (b.deadline === null || typeof b.deadline === 'string') &&
    typeof b.keep_alive_left === 'number'
  );
}

/** Press "Keep running" for this server; never throws. */
export async function keepAlive(
  request: Fetcher = endpoint('keepalive')
): Promise<KeepAliveResult> {
  let response: Response;
  try {
    response = await request({ method: 'POST', body: '{}' });
  } catch {
    return {
      ok: false,
      message:
        'This JupyterLab cannot reach its server; the server may still be stopped. Save your work.'
    };
  }
  const body = await bodyOf(response);
  if (response.ok) {
    const left = body?.keep_alive_left;
    return { ok: true, left: typeof left === 'number' ? left : 0 };
  }
  return {
    ok: false,
    message:
      typeof body?.message === 'string'
        ? body.message
        : `"Keep running" failed (${response.status}); the server may still be stopped. Save your work.`
  };
}

/** The open-document shape this needs from JupyterLab's DocumentWidget. */
interface ISavableContext {
  path: string;
  model: { dirty: boolean };
  contentsModel: { writable?: boolean } | null;
  save(): Promise<void>;
}

function contextOf(widget: Widget): ISavableContext | null {
  const context = (widget as unknown as { context?: unknown }).context;
  if (typeof context !== 'object' || context === null) {
    return null;
  }
  const c = context as Partial<ISavableContext>;
  return typeof c.path === 'string' &&
    typeof c.save === 'function' &&
    typeof c.model?.dirty === 'boolean'
    ? (c as ISavableContext)
    : null;
}

/**
 * Save every open document that has unsaved changes, once per file.
 *
 * Unlike `docmanager:save-all`, clean documents are left alone: a save is activity to
 * the idle-shutdown policy, and an open tab with nothing new in it must not count.
 */
export async function saveDirtyDocuments(
  shell: JupyterFrontEnd.IShell
): Promise<ISaveResult> {
  const contexts = new Map<string, ISavableContext>();
  for (const widget of shell.widgets('main')) {
    const context = contextOf(widget);
    if (
      context !== null &&
      context.model.dirty &&
      context.contentsModel?.writable !== false
    ) {
      contexts.set(context.path, context);
    }
  }
  const result: ISaveResult = { saved: [], failed: [] };
  await Promise.all(
    [...contexts.values()].map(async context => {
      const name = PathExt.basename(context.path);
      try {
        await context.save();
        result.saved.push(name);
      } catch (reason) {
        console.error(`mlfactory: could not save ${context.path}.`, reason);
        result.failed.push(name);
      }
    })
  );
  return result;
}

/** "14:02", or a date and time when the deadline is not today. */
export function formatDeadline(iso: string, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) {
    return iso;
  }
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === now.toDateString()
    ? time
    : `${d.toLocaleDateString()} ${time}`;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** What a save did, as a sentence ("" when there was nothing to save). */
export function saveSentence(result: ISaveResult | null): string {
  if (result === null) {
    return '';
  }
  const parts: string[] = [];
  if (result.saved.length > 0) {
    parts.push(
      `Saved ${plural(result.saved.length, 'document', 'documents')} with unsaved changes.`
    );
  }
  if (result.failed.length > 0) {
    parts.push(`Could not save ${result.failed.join(', ')}: save it yourself.`);
  }
  return parts.join(' ');
}

/** The warning's text; the toast shows 140 characters, so the essentials come first. */
export function warningMessage(
  status: ICullingStatus,
  save: ISaveResult | null,
  now: Date = new Date()
): string {
  const when = status.deadline
    ? `at ${formatDeadline(status.deadline, now)}`
    : 'soon';
  const why = status.reason ? ` because ${status.reason}` : '';
  const none =
    status.keep_alive_left <= 0 ? ' No "Keep running" presses are left.' : '';
  return `This server will be stopped ${when}${why}.${none} ${saveSentence(save)}`.trim();
}

export function keptMessage(left: number): string {
  return left > 0
    ? `This server keeps running. You can press "Keep running" ${plural(left, 'more time', 'more times')}.`
    : 'This server keeps running. That was the last "Keep running" press.';
}

function sameDeadline(a: string | null, b: string | null): boolean {
  if (a === b) {
    return true;
  }
  if (a === null || b === null) {
    return false;
  }
  const gap = Math.abs(new Date(a).getTime() - new Date(b).getTime());
  return gap < SAME_DEADLINE_MS;
}

/** The notification calls this monitor needs; JupyterLab's `Notification` by default. */
export interface INotifier {
  warning(message: string, options: Notification.IOptions<null>): string;
  update(args: Notification.IUpdate<null>): boolean;
  dismiss(id: string): void;
}

const defaultNotifier: INotifier = {
  warning: (message, options) => Notification.warning(message, options),
  update: args => Notification.update(args),
  dismiss: id => Notification.dismiss(id)
};

/** Polls, warns, saves and keeps the server alive on request; `dispose()` stops it. */
export class CullingMonitor {
  constructor(options: {
    save: () => Promise<ISaveResult>;
    fetch?: () => Promise<CullingPoll>;
    keepAlive?: () => Promise<KeepAliveResult>;
    notifier?: INotifier;
    /** Where the stop notice reads the warning and the saves (the page's log by default). */
    log?: SessionLog;
  }) {
    this._log = options.log ?? sessionLog;
    this._save = options.save;
    this._fetch = options.fetch ?? (() => fetchCulling());
    this._keepAlive = options.keepAlive ?? (() => keepAlive());
    this._notifier = options.notifier ?? defaultNotifier;
    // a hidden tab catches up on focus; the pre-deadline save runs on its own timer
    this._poller = new Poller(() => this._check(), {
      name: 'idle-shutdown',
      interval: POLL_MS,
      focusMinMs: FOCUS_MIN_MS
    });
  }

  start(): void {
    this._poller.start();
  }

  dispose(): void {
    this._poller.dispose();
    this._clearSaveTimer();
  }

  /** Ask now (unless a poll is running). */
  poll(): Promise<void> {
    return this._poller.run();
  }

  private async _check(): Promise<void> {
    const result = await this._fetch();
    if (result.state === 'off') {
      this.dispose(); // it will not change while this server runs
    } else if (result.state === 'ok') {
      const hint = result.status.poll_seconds;
      if (
        typeof hint === 'number' &&
        isFinite(hint) &&
        !this._poller.isDisposed
      ) {
        // as often as the service asks, between 1 s and POLL_MS
        this._poller.interval = Math.min(POLL_MS, Math.max(1_000, hint * 1000));
      }
      await this._show(result.status);
    }
  }

  private async _show(status: ICullingStatus): Promise<void> {
    if (status.action !== 'warn') {
      // kept after all (activity, or "Keep running" pressed in another tab)
      this._log.idleWarning = null;
      this._warning = null;
      this._clearSaveTimer();
      if (this._notificationId !== null) {
        this._notifier.dismiss(this._notificationId);
        this._notificationId = null;
      }
      return;
    }
    if (
      this._warning !== null &&
      sameDeadline(this._warning.deadline, status.deadline)
    ) {
      return; // this warning was shown already, even if the user closed it
    }
    this._warning = { deadline: status.deadline };
    this._log.idleWarning = {
      reason: status.reason,
      deadline: status.deadline
    };
    const actions: Notification.IAction[] =
      status.keep_alive_left > 0
        ? [
            {
              label: 'Keep running',
              caption: 'Reset the idle clock for this server',
              displayType: 'accent',
              callback: event => {
                // keep the notification open to say how the press went
                event.preventDefault();
                void this._press();
              }
            }
          ]
        : [];
    // warn first, then save: the warning must not wait on a slow save
    const shown = {
      type: 'warning' as const,
      actions,
      autoClose: false as const
    };
    // a new deadline while the old warning is still up: change it rather than pile up
    const updated =
      this._notificationId !== null &&
      this._notifier.update({
        id: this._notificationId,
        message: warningMessage(status, null),
        ...shown
      });
    if (!updated) {
      this._notificationId = this._notifier.warning(
        warningMessage(status, null),
        { actions, autoClose: false }
      );
    }
    const id = this._notificationId;
    const saved = await this._save();
    this._log.recordSave('when idle shutdown warned', saved);
    if (
      (saved.saved.length > 0 || saved.failed.length > 0) &&
      id !== null &&
      this._notificationId === id
    ) {
      this._notifier.update({
        id,
        message: warningMessage(status, saved),
        ...shown
      });
    }
    this._scheduleSave(status.deadline);
  }

  private async _press(): Promise<void> {
    const id = this._notificationId;
    const result = await this._keepAlive();
    if (result.ok) {
      this._log.idleWarning = null;
      this._warning = null;
      this._clearSaveTimer();
      this._notificationId = null;
      if (id !== null) {
        this._notifier.update({
          id,
          message: keptMessage(result.left),
          type: 'success',
          actions: [],
          autoClose: 8000
        });
      }
    } else if (id !== null) {
      this._notifier.update({
        id,
        message: result.message,
        type: 'error',
        actions: [],
        autoClose: false
      });
    }
  }

  private _scheduleSave(deadline: string | null): void {
    this._clearSaveTimer();
    const at = deadline ? new Date(deadline).getTime() - SAVE_AHEAD_MS : NaN;
    const wait = at - Date.now();
    if (!Number.isFinite(wait) || wait <= 0) {
      return;
    }
    this._saveTimer = window.setTimeout(() => {
      this._saveTimer = null;
      void this._save().then(result => {
        this._log.recordSave('shortly before the idle shutdown', result);
        if (result.saved.length > 0 || result.failed.length > 0) {
          console.info(
            `mlfactory: before the idle shutdown: ${saveSentence(result)}`
          );
        }
      });
    }, wait);
  }

  private _clearSaveTimer(): void {
    if (this._saveTimer !== null) {
      window.clearTimeout(this._saveTimer);
      this._saveTimer = null;
    }
  }

  private _log: SessionLog;
  private _save: () => Promise<ISaveResult>;
  private _fetch: () => Promise<CullingPoll>;
  private _keepAlive: () => Promise<KeepAliveResult>;
  private _notifier: INotifier;
  /** The warning shown last, keyed by its deadline; null while the server is kept. */
  private _warning: { deadline: string | null } | null = null;
  private _notificationId: string | null = null;
  private _poller: Poller;
  private _saveTimer: number | null = null;
}

export const cullingPlugin: JupyterFrontEndPlugin<void> = {
  id: 'mlfactory:culling',
  description:
    'Warns before the idle shutdown stops this server, saves unsaved documents, and offers "Keep running".',
  autoStart: true,
  activate: (app: JupyterFrontEnd): void => {
    const monitor = new CullingMonitor({
      save: () => saveDirtyDocuments(app.shell)
    });
    // Not awaited: activation never waits on the server. Idle shutdown warns the owner
    // (owner-only route); a visitor's page does not ask.
    void app.restored
      .then(() => visitedOwner())
      .then(owner => {
        if (owner === null) {
          monitor.start();
        }
      });
  }
};
