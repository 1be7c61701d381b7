/**
 * The notebook-history REST API (`<base>/mlfactory/history/...`): its types
 * and the one function the history panel calls it through.
 */
import type { INotebookContent } from '@jupyterlab/nbformat';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import type { IDiffEntry } from 'nbdime/lib/diff/diffentries';

import { isAbort, MlfactoryError, requestJSON } from '../handler';

export { isAbort };

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
  /** As git recorded it; `name` is what the panel shows. */
  author: string;
  /** The author's name for people: never an e-mail address. */
  name: string;
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

export { MlfactoryError as HistoryError };

/** The `conflicts` a refused pull lists, if any. */
export function conflictsOf(error: MlfactoryError): string[] {
  return stringList(error.body, 'conflicts');
}

/**
 * Call `<base>/mlfactory/history/<endPoint>` (JSON in, JSON out); see
 * `requestJSON` for what it throws.
 */
export function requestHistory<T>(
  endPoint: string,
  init: RequestInit & { json?: unknown } = {}
): Promise<T> {
  const { baseUrl } = ServerConnection.makeSettings();
  const { json, ...request } = init;
  if (json !== undefined) {
    request.body = JSON.stringify(json);
    request.headers = { 'Content-Type': 'application/json' };
  }
  return requestJSON<T>(
    URLExt.join(baseUrl, 'mlfactory', 'history', endPoint),
    `mlfactory/history/${endPoint.split('?')[0]}`,
    request
  );
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

function stringList(data: unknown, key: string): string[] {
  if (typeof data === 'object' && data !== null && key in data) {
    const value = (data as Record<string, unknown>)[key];
    if (Array.isArray(value)) {
      return value.filter((item): item is string => typeof item === 'string');
    }
  }
  return [];
}
