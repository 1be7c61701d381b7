/**
 * The notebook-history REST API (`<base>/mlfactory/history/...`): its types
 * and the one function the history panel calls it through.
 */
import type { INotebookContent } from '@jupyterlab/nbformat';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import type { IDiffEntry } from 'nbdime/lib/diff/diffentries';

/** How a notebook's text twin is written next to it (jupytext formats). */
export type Pairing = 'py:percent' | 'md' | 'py:light' | 'none';

export interface IRemote {
  url: string;
  has_credentials: boolean;
}

/** `GET history/status`. */
export interface IHistoryStatus {
  repository: boolean;
  branch: string | null;
  remote: IRemote | null;
  pairing: Pairing;
  autosave_minutes: number;
  jupyterlab_git: boolean;
  author: { name: string; email: string };
}

export interface IVersion {
  id: string;
  short: string;
  /** ISO 8601, UTC. */
  time: string;
  author: string;
  email: string;
  message: string;
  /** Made by the autosave timer rather than by the user. */
  automatic: boolean;
}

/** `GET history/versions`. */
export interface IVersionList {
  path: string;
  /** Newest first. */
  versions: IVersion[];
  /** The file on disk differs from its newest version. */
  dirty: boolean;
}

/** The working copy's pseudo-version id in a diff request. */
export const WORKING = 'working';

/** `GET history/diff`. */
export interface IDiffResult {
  base: INotebookContent;
  diff: IDiffEntry[];
  from: string;
  to: string;
}

export interface IHistorySettings {
  pairing: Pairing;
  autosave_minutes: number;
}

export interface IPushResult {
  pushed: boolean | number;
  branch: string;
}

export interface IPullResult {
  updated: boolean;
  merged_notebooks: string[];
  conflicts: string[];
}

/** An answer that is not 2xx, with the server's JSON body kept. */
export class HistoryError extends ServerConnection.ResponseError {
  constructor(response: Response, message: string, body: unknown) {
    super(response, message);
    this.body = body;
  }

  get status(): number {
    return this.response.status;
  }

  /** The `conflicts` a refused pull lists, if any. */
  get conflicts(): string[] {
    return stringList(this.body, 'conflicts');
  }

  readonly body: unknown;
}

/**
 * Call `<base>/mlfactory/history/<endPoint>` (JSON in, JSON out).
 *
 * @throws ServerConnection.NetworkError when the server cannot be reached,
 *   or a DOMException named AbortError when `init.signal` aborts.
 * @throws HistoryError carrying the server's `message` and body when the
 *   answer is not 2xx.
 */
export async function requestHistory<T>(
  endPoint: string,
  init: RequestInit & { json?: unknown } = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mlfactory', 'history', endPoint);
  const { json, ...rest } = init;
  const request: RequestInit = { ...rest };
  if (json !== undefined) {
    request.body = JSON.stringify(json);
    request.headers = { 'Content-Type': 'application/json' };
  }

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, request, settings);
  } catch (error) {
    // JupyterLab wraps an abort in a NetworkError: unwrap it.
    throwIfAborted(init.signal);
    if (error instanceof ServerConnection.NetworkError) {
      throw error;
    }
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throwIfAborted(init.signal);
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
  const name = `mlfactory/history/${endPoint.split('?')[0]}`;
  if (!response.ok) {
    // Only a JSON `message` is shown as is; an HTML error page is not.
    throw new HistoryError(
      response,
      messageOf(data) ??
        `${name} answered ${response.status} ${response.statusText}`.trim(),
      data
    );
  }
  if (!isJSON) {
    throw new HistoryError(response, `${name} did not answer with JSON`, data);
  }
  return data as T;
}

/** `versions?path=a%20b.ipynb&limit=100` */
export function withQuery(
  endPoint: string,
  query: Record<string, string | number>
): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    params.set(key, String(value));
  }
  return `${endPoint}?${params.toString()}`;
}

/** The text of an error for a person: the server's message when it sent one. */
export function errorText(error: unknown, fallback: string): string {
  if (error instanceof ServerConnection.NetworkError) {
    return 'Could not reach the server. Check your connection and try again.';
  }
  if (error instanceof Error && error.message) {
    return error.message;
  }
  return fallback;
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

function throwIfAborted(signal: AbortSignal | null | undefined): void {
  if (signal?.aborted) {
    throw new DOMException('The request was cancelled.', 'AbortError');
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

function stringList(data: unknown, key: string): string[] {
  if (typeof data === 'object' && data !== null && key in data) {
    const value = (data as Record<string, unknown>)[key];
    if (Array.isArray(value)) {
      return value.filter((item): item is string => typeof item === 'string');
    }
  }
  return [];
}
