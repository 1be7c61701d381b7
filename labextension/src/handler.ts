/**
 * The one way the labextension calls the mlfactory server extension.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';

/** Query parameters; empty and undefined values are left out of the URL. */
export type QueryParams = Record<string, string | number | undefined>;

/** An answer that is not 2xx (or not JSON), with the server's JSON body kept. */
export class MlfactoryError extends ServerConnection.ResponseError {
  constructor(response: Response, message: string, body: unknown) {
    super(response, message);
    this.body = body;
  }

  get status(): number {
    return this.response.status;
  }

  /** The server's JSON body, e.g. the `conflicts` a refused pull lists. */
  readonly body: unknown;
}

/**
 * Fetch `url` (a URL under the server's base) and return the parsed JSON body;
 * `name` names the route in error messages.
 *
 * @throws DOMException (AbortError) when `init.signal` aborts the request.
 * @throws ServerConnection.NetworkError when the server cannot be reached.
 * @throws MlfactoryError carrying the server's `message` when the answer is
 *   not 2xx or its body is not JSON.
 */
export async function requestJSON<T>(
  url: string,
  name: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  let response: Response;
  let text: string;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
    text = await response.text();
  } catch (error) {
    // JupyterLab wraps an abort in a NetworkError: say what happened.
    if (init.signal?.aborted) {
      throw new DOMException('The request was cancelled.', 'AbortError');
    }
    if (error instanceof ServerConnection.NetworkError) {
      throw error;
    }
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  let data: unknown = undefined;
  let isJSON = true;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      isJSON = false;
    }
  }
  if (!response.ok) {
    // Only a JSON `message` is shown as is; an HTML error page is not.
    throw new MlfactoryError(
      response,
      messageOf(data) ??
        `${name} answered ${response.status} ${response.statusText}`.trim(),
      data
    );
  }
  if (!isJSON) {
    throw new MlfactoryError(
      response,
      `${name} did not answer with JSON`,
      data
    );
  }
  return data as T;
}

/** Call `<base>/mlfactory/api/<endPoint>`; see `requestJSON`. */
export function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {}
): Promise<T> {
  const { baseUrl } = ServerConnection.makeSettings();
  return requestJSON<T>(
    URLExt.join(baseUrl, 'mlfactory', 'api', endPoint),
    `mlfactory/api/${endPoint}`,
    init
  );
}

/**
 * Call `<base>/mlfactory/<segments…>?<query>`, for the routes outside
 * `mlfactory/api` (e.g. `mlfactory/components/…`); see `requestJSON`.
 * Each segment is URL-encoded here, so server-provided names are safe to pass.
 */
export function requestMlfactory<T>(
  segments: string[],
  query: QueryParams = {},
  init: RequestInit = {}
): Promise<T> {
  const { baseUrl } = ServerConnection.makeSettings();
  const path = segments.map(encodeURIComponent).join('/');
  const params: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== '') {
      params[key] = String(value);
    }
  }
  const url =
    URLExt.join(baseUrl, 'mlfactory', path) +
    (Object.keys(params).length ? URLExt.objectToQueryString(params) : '');
  return requestJSON<T>(url, `mlfactory/${path}`, init);
}

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
  /** ISO 8601: when this server process started. */
  started?: string | null;
}

let infoOnce: Promise<IInfo> | null = null;

/**
 * `GET <base>/mlfactory/api/info`, asked once per page and shared by every panel
 * (who the caller is and whether they own this server do not change while the page
 * lives). A failed answer is not kept: the next call asks again.
 */
export function serverInfo(): Promise<IInfo> {
  if (infoOnce === null) {
    infoOnce = requestAPI<IInfo>('info').catch(error => {
      infoOnce = null;
      throw error;
    });
  }
  return infoOnce;
}

/**
 * The owner's name when the caller is visiting someone else's server (a workspace
 * share), null for the owner. Owner-only panels and polls ask this first and stay
 * quiet for visitors rather than collect 403s. When the server cannot say, the caller
 * is taken for the owner: the server checks every owner-only call again anyway.
 */
export async function visitedOwner(): Promise<string | null> {
  try {
    const info = await serverInfo();
    return info.is_owner === false ? info.owner || 'another user' : null;
  } catch {
    return null;
  }
}

/** "You are visiting alice's workspace", for a panel that only its owner can fill. */
export function visitingLine(owner: string): string {
  return `You are visiting ${owner}'s workspace`;
}

/** Whether `error` is the AbortError `requestJSON` throws for a cancelled call. */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

/**
 * Runs `job` now and then every `interval` ms, on JupyterLab's own `Poll`: the one poll
 * loop of the clients that watch the server (budget, idle warning).
 *
 * - A hidden tab skips its turns; it catches up when the window regains focus, which
 *   runs `job` unless it last started less than `focusMinMs` ago.
 * - One run at a time: a turn or a focus that comes while `job` runs is dropped.
 * - `job` handles its own failures; one that throws anyway is logged and tried again at
 *   the next turn, at the same interval (no backoff).
 * - `dispose()` stops it for good (a job may call it, e.g. when the feature is off).
 */
export class Poller {
  constructor(job: () => Promise<void>, options: Poller.IOptions) {
    this._job = job;
    this._name = options.name;
    this._focusMinMs = options.focusMinMs;
    this._poll = new Poll({
      auto: false,
      factory: () => this.run(),
      frequency: Private.every(options.interval),
      name: `mlfactory:${options.name}`,
      standby: () => document.hidden
    });
  }

  /** Milliseconds between turns; a change restarts the wait for the next turn. */
  get interval(): number {
    return this._poll.frequency.interval;
  }
  set interval(ms: number) {
    ms = Math.round(ms); // as Poll stores it
    if (this.isDisposed || ms === this.interval) {
      return;
    }
    this._poll.frequency = Private.every(ms);
    if (this._started) {
      // the next turn comes `ms` from now, not at the end of the old interval
      void this._poll.schedule();
    }
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  /** Run `job` now (hidden tab or not), then start the turns and the focus catch-up. */
  start(): void {
    if (this._started || this.isDisposed) {
      return;
    }
    this._started = true;
    window.addEventListener('focus', this._onFocus);
    void this.run();
    // the first turn comes one interval from now (Poll.start() would run `job` again)
    void this._poll.schedule({ phase: 'started' });
  }

  /** Run `job` now, between turns, unless it is running. */
  async run(): Promise<void> {
    if (this._busy) {
      return;
    }
    this._busy = true;
    this._last = Date.now();
    try {
      await this._job();
    } catch (reason) {
      console.error(`mlfactory: ${this._name} poll failed.`, reason);
    } finally {
      this._busy = false;
    }
  }

  dispose(): void {
    window.removeEventListener('focus', this._onFocus);
    this._poll.dispose();
  }

  private _onFocus = (): void => {
    if (Date.now() - this._last >= this._focusMinMs) {
      void this.run();
    }
  };

  private _job: () => Promise<void>;
  private _name: string;
  private _focusMinMs: number;
  private _poll: Poll;
  private _started = false;
  private _busy = false;
  private _last = 0;
}

export namespace Poller {
  export interface IOptions {
    /** Milliseconds between turns while the tab is visible. */
    interval: number;
    /** A window focus runs the job unless it last started less than this ago. */
    focusMinMs: number;
    /** What is polled, for the console and the `Poll`'s name, e.g. "budget". */
    name: string;
  }
}

namespace Private {
  /** A fixed interval: `run` never rejects, and a failure must not slow the turns. */
  export function every(ms: number): {
    interval: number;
    backoff: boolean;
    max: number;
  } {
    return { interval: ms, backoff: false, max: ms };
  }
}

function messageOf(data: unknown): string | undefined {
  if (typeof data === 'object' && data !== null && 'message' in data) {
    const { message } = data as { message: unknown };
    if (typeof message === 'string' && message.length > 0) {
      return message;
    }
  }
  return undefined;
}
