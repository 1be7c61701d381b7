/**
 * The notice when this server stops: why (you, idle shutdown, a budget, or someone from
 * the hub), when, which documents were saved before and which could not be, and a link to
 * start it again. It replaces JupyterLab's generic "Server unavailable" dialog (the
 * package disables `@jupyterlab/hub-extension:connectionlost` and provides
 * `IConnectionLost` here).
 *
 * Once the server is gone, its extension cannot answer and the hub has revoked this page's
 * token, so the reason comes from the platform service with a stop ticket this page got
 * from its server while it ran (`mlfactory/api/stop-ticket`, renewed every 10 minutes).
 */
import {
  IConnectionLost,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { Widget } from '@lumino/widgets';

import { formatDeadline } from './culling';
import { IHubFacts, hubFacts, serviceUrl, spawnUrl } from './hub';
import { MlfactoryError, Poller, requestAPI, visitedOwner } from './handler';
import { ISaveRecord, SessionLog, sessionLog } from './sessionlog';

/** The platform's record of the stop (`api/culling/last-stop`'s `stop`). */
export interface ILastStop {
  by: 'idle-shutdown' | 'budget';
  reason: string;
  stopped_at: string;
  budget?: { kind: string; name: string };
}

export type StopCause =
  | { by: 'you' }
  | { by: 'idle-shutdown'; reason: string }
  | { by: 'budget'; reason: string }
  /** The platform did not stop it: a person did, from the hub. */
  | { by: 'hub' }
  /** Nobody could say (no ticket, or the platform service did not answer). */
  | { by: 'unknown' };

export const TICKET_HEADER = 'X-Mlfactory-Stop-Ticket';
export const TICKET_MS = 10 * 60_000;
/** How long to wait for the platform to record a stop it made (it records after the hub). */
export const LOOKUP_DELAYS_MS = [0, 1000, 2000, 3000, 4000];

/**
 * Why the server stopped. The platform's record wins; then what this page saw: a stop
 * pressed here, an idle-shutdown warning or a spent `stop` budget. `record` is undefined
 * when the service could not be asked, null when it has no stop for this server.
 */
export function stopCause(
  record: ILastStop | null | undefined,
  seen: Pick<SessionLog, 'stopRequested' | 'idleWarning' | 'budgetStop'>
): StopCause {
  if (record) {
    return { by: record.by, reason: record.reason };
  }
  if (seen.stopRequested !== null) {
    return { by: 'you' };
  }
  if (seen.budgetStop !== null) {
    return { by: 'budget', reason: seen.budgetStop.reason };
  }
  if (seen.idleWarning !== null) {
    return { by: 'idle-shutdown', reason: seen.idleWarning.reason };
  }
  return record === null ? { by: 'hub' } : { by: 'unknown' };
}

export function causeSentence(cause: StopCause): string {
  switch (cause.by) {
    case 'you':
      return 'You stopped this server from this JupyterLab.';
    case 'idle-shutdown':
      return `Idle shutdown stopped this server because ${cause.reason}.`;
    case 'budget':
      return `The platform stopped this server because ${cause.reason}.`;
    case 'hub':
      return 'This server was stopped from the hub (the Hub Control Panel), by you or an admin.';
    default:
      return 'This server has stopped or cannot be reached, and the reason could not be found.';
  }
}

function names(list: readonly string[]): string {
  return list.join(', ');
}

/**
 * The notice's lines: why, when, what was saved and what was not.
 *
 * @param stoppedAt - the platform's time of the stop, else when this page noticed it.
 * @param saves - saves made while the server ran (idle warning, budget, "Stop" pressed).
 * @param unsaved - documents that still had unsaved changes when the stop was noticed.
 */
export function noticeLines(
  cause: StopCause,
  stoppedAt: { at: Date; recorded: boolean },
  saves: readonly ISaveRecord[],
  unsaved: readonly string[],
  now: Date = new Date()
): string[] {
  const lines = [causeSentence(cause)];
  const time = formatDeadline(stoppedAt.at.toISOString(), now);
  // without the platform's record, only the moment this page noticed is known
  lines.push(
    stoppedAt.recorded ? `Stopped at ${time}.` : `Noticed at ${time}.`
  );
  for (const s of saves) {
    const when = formatDeadline(s.at.toISOString(), now);
    if (s.result.saved.length > 0) {
      lines.push(`Saved ${names(s.result.saved)} at ${when}, ${s.why}.`);
    }
    if (s.result.failed.length > 0) {
      lines.push(`Could not save ${names(s.result.failed)} at ${when}.`);
    }
  }
  if (unsaved.length > 0) {
    lines.push(
      `Not saved: ${names(unsaved)}. The server had already stopped. Copy what you need from this tab before you close or reload it.`
    );
  } else if (saves.every(s => s.result.saved.length === 0)) {
    lines.push('No open document had unsaved changes.');
  } else {
    lines.push('Every open document was saved.');
  }
  return lines;
}

type Fetch = (url: string, init: RequestInit) => Promise<Response>;

/** Ask the platform once; undefined when it could not be asked or did not answer. */
export async function fetchLastStop(
  facts: IHubFacts,
  ticket: string,
  request: Fetch = (url, init) => fetch(url, init)
): Promise<ILastStop | null | undefined> {
  try {
    const response = await request(serviceUrl(facts, 'api/culling/last-stop'), {
      headers: { [TICKET_HEADER]: ticket },
      credentials: 'omit'
    });
    if (!response.ok) {
      return undefined;
    }
    const body = (await response.json()) as { stop?: ILastStop | null };
    return body.stop ?? null;
  } catch {
    return undefined;
  }
}

/** Open documents with unsaved changes, by file name. */
export function unsavedDocuments(shell: JupyterFrontEnd.IShell): string[] {
  const found = new Set<string>();
  for (const widget of shell.widgets('main')) {
    const context = (
      widget as unknown as {
        context?: { path?: unknown; model?: { dirty?: unknown } };
      }
    ).context;
    if (typeof context?.path === 'string' && context.model?.dirty === true) {
      found.add(PathExt.basename(context.path));
    }
  }
  return [...found];
}

/** Keeps a fresh stop ticket in the session log while the server runs. */
export class TicketKeeper {
  constructor(log: SessionLog = sessionLog) {
    this._log = log;
    this._poller = new Poller(() => this._renew(), {
      name: 'stop-ticket',
      interval: TICKET_MS,
      focusMinMs: TICKET_MS
    });
  }

  start(): void {
    this._poller.start();
  }

  dispose(): void {
    this._poller.dispose();
  }

  private async _renew(): Promise<void> {
    try {
      const reply = await requestAPI<{ ticket?: unknown }>('stop-ticket');
      if (typeof reply.ticket === 'string') {
        this._log.ticket = reply.ticket;
      }
    } catch (error) {
      // not the owner, no service configured, or an old server: it will not change
      if (
        error instanceof MlfactoryError &&
        (error.status === 403 || error.status === 404)
      ) {
        this.dispose();
      }
      // otherwise keep the last ticket and try at the next turn
    }
  }

  private _log: SessionLog;
  private _poller: Poller;
}

function delay(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** Whether the server still answers (a network blip, not a stop). */
async function serverAnswers(): Promise<boolean> {
  try {
    await requestAPI('health');
    return true;
  } catch {
    return false;
  }
}

/** The notice's body: text nodes only. */
function noticeBody(lines: string[]): Widget {
  const body = new Widget();
  body.addClass('mlfactory-StopNotice');
  body.node.dataset.testid = 'mlfactory-stop-notice';
  for (const line of lines) {
    const p = document.createElement('p');
    p.textContent = line;
    body.node.appendChild(p);
  }
  return body;
}

/** The `IConnectionLost` handler: one notice per stop. */
export class StopNotice {
  constructor(shell: JupyterFrontEnd.IShell, log: SessionLog = sessionLog) {
    this._shell = shell;
    this._log = log;
  }

  /** JupyterLab calls this on each failed poll; the arguments are not needed here. */
  readonly handle = async (): Promise<void> => {
    if (this._busy || this._shown || this._log.leaving) {
      return;
    }
    this._busy = true;
    try {
      if (await serverAnswers()) {
        return; // a blip: JupyterLab reconnects by itself
      }
      const noticed = new Date();
      const unsaved = unsavedDocuments(this._shell);
      const facts = hubFacts();
      const record = await this._lookUp(facts);
      const cause = stopCause(record, this._log);
      const stoppedAt = record
        ? { at: new Date(record.stopped_at), recorded: true }
        : { at: noticed, recorded: false };
      this._shown = true;
      await this._show(
        facts,
        noticeLines(cause, stoppedAt, this._log.saves, unsaved),
        unsaved.length > 0
      );
    } finally {
      this._busy = false;
    }
  };

  /** The platform's record, waiting a little for it unless this page knows already. */
  private async _lookUp(
    facts: IHubFacts | null
  ): Promise<ILastStop | null | undefined> {
    const ticket = this._log.ticket;
    if (facts === null || ticket === null) {
      return undefined;
    }
    let record: ILastStop | null | undefined = undefined;
    for (const ms of LOOKUP_DELAYS_MS) {
      await delay(ms);
      record = await fetchLastStop(facts, ticket);
      if (record || this._log.stopRequested !== null) {
        break;
      }
    }
    return record;
  }

  private async _show(
    facts: IHubFacts | null,
    lines: string[],
    keepTab: boolean
  ): Promise<void> {
    const buttons = [Dialog.cancelButton({ label: 'Dismiss' })];
    if (facts !== null) {
      buttons.push(Dialog.okButton({ label: 'Start the server again' }));
    }
    const result = await showDialog({
      title: 'This server has stopped',
      body: noticeBody(lines),
      buttons
    });
    if (result.button.accept && facts !== null) {
      if (keepTab) {
        // this tab still holds unsaved changes: start the server in another one
        window.open(spawnUrl(facts), '_blank', 'noopener');
      } else {
        window.location.assign(spawnUrl(facts));
      }
    }
  }

  private _shell: JupyterFrontEnd.IShell;
  private _log: SessionLog;
  private _busy = false;
  private _shown = false;
}

export const stopNoticePlugin: JupyterFrontEndPlugin<IConnectionLost> = {
  id: 'mlfactory:stop-notice',
  description:
    'Says why this server stopped (you, idle shutdown, a budget, the hub) and what was saved, instead of the generic "Server unavailable" dialog.',
  autoStart: true,
  provides: IConnectionLost,
  activate: (app: JupyterFrontEnd): IConnectionLost => {
    if (hubFacts() !== null) {
      const keeper = new TicketKeeper();
      // Not awaited: activation never waits on the server. The ticket reads the owner's
      // stops (owner-only route): a visitor's page does not ask for one.
      void app.restored
        .then(() => visitedOwner())
        .then(owner => {
          if (owner === null) {
            keeper.start();
          }
        });
    }
    return new StopNotice(app.shell).handle;
  }
};
