/**
 * What this JupyterLab learned about its server while the server ran, for the panel and
 * for the notice when the server stops: the latest budget answer (cost so far), saves
 * made ahead of a stop, warnings seen, a stop asked for here, and the stop ticket.
 *
 * One instance per page (`sessionLog`), written by the budget, idle-shutdown, panel and
 * stop-notice plugins; it does no I/O.
 */
import { Signal } from '@lumino/signaling';

import type { IBudgetReply, IServerCost } from './budget';
import type { ISaveResult } from './culling';

/** One save of the open documents, and why it was made. */
export interface ISaveRecord {
  at: Date;
  /** "when idle shutdown warned", "before you stopped it", … */
  why: string;
  result: ISaveResult;
}

export class SessionLog {
  /** Emitted when the budget answer changes (the panel re-renders its cost). */
  get changed(): Signal<this, void> {
    return this._changed;
  }

  /** The latest answer of `mlfactory/api/budget`; null until one came. */
  get budget(): IBudgetReply | null {
    return this._budget;
  }

  setBudget(reply: IBudgetReply): void {
    this._budget = reply;
    this._changed.emit();
  }

  /** This server's running cost in the latest budget answer, if the service lists it. */
  serverCost(serverName: string): IServerCost | null {
    return (
      this._budget?.servers?.find(s => s.server_name === serverName) ?? null
    );
  }

  readonly saves: ISaveRecord[] = [];

  recordSave(why: string, result: ISaveResult, at: Date = new Date()): void {
    if (result.saved.length > 0 || result.failed.length > 0) {
      this.saves.push({ at, why, result });
    }
  }

  /** Idle shutdown's latest warning (cleared when the server is kept). */
  idleWarning: { reason: string; deadline: string | null } | null = null;
  /** A `stop` budget at 100% that applies to this server. */
  budgetStop: { reason: string } | null = null;
  /** When the person pressed "Stop" or "Change resources" here. */
  stopRequested: Date | null = null;
  /** Set while "Change resources" takes the page to the spawn page: no notice then. */
  leaving = false;
  /** The latest ticket for `api/culling/last-stop` (see the platform's stop_notice.py). */
  ticket: string | null = null;

  private _budget: IBudgetReply | null = null;
  private _changed = new Signal<this, void>(this);
}

export const sessionLog = new SessionLog();
